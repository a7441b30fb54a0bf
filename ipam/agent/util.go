package agent

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func keyOf(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func matchingField(field, value string) client.ListOption {
	return client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(field, value)}
}
