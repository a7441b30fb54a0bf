package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/ipam/podselect"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// dryRunSuffix names the objects a dry run imagines (the pod of a
// Deployment's ReplicaSet, a CronJob's Job).
const dryRunSuffix = "dry-run"

// Manifest is a dry run's input: the pod to imagine and the controllers
// above it that do not exist yet (or would change), by kind/namespace/name.
type Manifest struct {
	Pod         *corev1.Pod
	Controllers map[string]*metav1.PartialObjectMetadata
}

func ctrlKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

func owner(kind, name string, uid types.UID) []metav1.OwnerReference {
	gvk := subnets.AppKinds[kind]
	return []metav1.OwnerReference{{APIVersion: gvk.GroupVersion().String(), Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
}

func dryRunUID(kind, name string) types.UID {
	return types.UID("dry-run-" + strings.ToLower(kind) + "-" + name)
}

// ParseManifest reads one Pod, Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job or CronJob (YAML or JSON) and builds the pod it would run.
// A workload's pod gets the template's labels and annotations; the
// controllers get the manifest's metadata, so their annotations count as
// they would once applied. namespace is used when the manifest has none.
func ParseManifest(data []byte, namespace string) (*Manifest, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("not a Kubernetes manifest: %w", err)
	}
	if head.Kind == "" {
		return nil, fmt.Errorf("the manifest has no kind; want a Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob")
	}
	ns := head.Metadata.Namespace
	if ns == "" {
		ns = namespace
	}
	name := head.Metadata.Name
	if name == "" {
		name = strings.TrimSuffix(head.Metadata.GenerateName, "-")
	}
	if name == "" {
		return nil, fmt.Errorf("%s has no metadata.name", head.Kind)
	}
	m := &Manifest{Controllers: map[string]*metav1.PartialObjectMetadata{}}
	ctrl := func(kind, cname string, ann map[string]string, owners []metav1.OwnerReference) types.UID {
		uid := dryRunUID(kind, cname)
		m.Controllers[ctrlKey(kind, ns, cname)] = &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{APIVersion: subnets.AppKinds[kind].GroupVersion().String(), Kind: kind},
			ObjectMeta: metav1.ObjectMeta{Name: cname, Namespace: ns, UID: uid, Annotations: ann, OwnerReferences: owners}}
		return uid
	}
	pod := &corev1.Pod{}
	var tmpl *corev1.PodTemplateSpec
	podName := name + "-" + dryRunSuffix
	switch head.Kind {
	case "Pod":
		if err := yaml.UnmarshalStrict(data, pod); err != nil {
			return nil, fmt.Errorf("failed to read Pod %s: %w", name, err)
		}
		pod.Name, pod.Namespace = name, ns
		pod.UID = ""
	case "Deployment":
		d := &appsv1.Deployment{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read Deployment %s: %w", name, err)
		}
		uid := ctrl("Deployment", name, d.Annotations, nil)
		rs := name + "-" + dryRunSuffix
		rsUID := ctrl("ReplicaSet", rs, nil, owner("Deployment", name, uid))
		tmpl, pod.OwnerReferences = &d.Spec.Template, owner("ReplicaSet", rs, rsUID)
	case "ReplicaSet":
		d := &appsv1.ReplicaSet{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read ReplicaSet %s: %w", name, err)
		}
		tmpl, pod.OwnerReferences = &d.Spec.Template, owner("ReplicaSet", name, ctrl("ReplicaSet", name, d.Annotations, nil))
	case "StatefulSet":
		d := &appsv1.StatefulSet{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read StatefulSet %s: %w", name, err)
		}
		start := 0
		if d.Spec.Ordinals != nil {
			start = int(d.Spec.Ordinals.Start)
		}
		podName = fmt.Sprintf("%s-%d", name, start)
		tmpl, pod.OwnerReferences = &d.Spec.Template, owner("StatefulSet", name, ctrl("StatefulSet", name, d.Annotations, nil))
	case "DaemonSet":
		d := &appsv1.DaemonSet{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read DaemonSet %s: %w", name, err)
		}
		tmpl, pod.OwnerReferences = &d.Spec.Template, owner("DaemonSet", name, ctrl("DaemonSet", name, d.Annotations, nil))
	case "Job":
		d := &batchv1.Job{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read Job %s: %w", name, err)
		}
		tmpl, pod.OwnerReferences = &d.Spec.Template, owner("Job", name, ctrl("Job", name, d.Annotations, nil))
	case "CronJob":
		d := &batchv1.CronJob{}
		if err := yaml.UnmarshalStrict(data, d); err != nil {
			return nil, fmt.Errorf("failed to read CronJob %s: %w", name, err)
		}
		uid := ctrl("CronJob", name, d.Annotations, nil)
		job := name + "-" + dryRunSuffix
		jobUID := ctrl("Job", job, nil, owner("CronJob", name, uid))
		tmpl, pod.OwnerReferences = &d.Spec.JobTemplate.Spec.Template, owner("Job", job, jobUID)
	default:
		return nil, fmt.Errorf("kind %q is not supported; want a Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob", head.Kind)
	}
	if tmpl != nil {
		pod.Name, pod.Namespace = podName, ns
		pod.Labels, pod.Annotations, pod.Spec = tmpl.Labels, tmpl.Annotations, tmpl.Spec
	}
	if pod.Namespace == "" {
		return nil, fmt.Errorf("%s %s has no namespace; set metadata.namespace or pass -n", head.Kind, name)
	}
	m.Pod = pod
	return m, nil
}

// clusterLookup reads controllers from the API server (metadata only);
// overlay answers first (a dry run's imagined controllers).
func clusterLookup(ctx context.Context, c client.Client, overlay map[string]*metav1.PartialObjectMetadata) podselect.Lookup {
	return func(gvk schema.GroupVersionKind, namespace, name string) (*metav1.PartialObjectMetadata, error) {
		live := &metav1.PartialObjectMetadata{}
		live.SetGroupVersionKind(gvk)
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, live)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("failed to get %s %s/%s: %w", gvk.Kind, namespace, name, err)
		}
		if o := overlay[ctrlKey(gvk.Kind, namespace, name)]; o != nil {
			o = o.DeepCopy()
			if err == nil && len(o.OwnerReferences) == 0 {
				// The manifest replaces the live object: same identity.
				o.UID = live.UID
			}
			return o, nil
		}
		if err != nil {
			return nil, nil
		}
		return live, nil
	}
}

// fixOwnerUIDs points the dry-run pod's and controllers' owner references
// at the UIDs lookup returns for the live objects the manifest replaces.
func fixOwnerUIDs(m *Manifest, get podselect.Lookup) error {
	fix := func(refs []metav1.OwnerReference, ns string) error {
		for i := range refs {
			gvk, ok := subnets.AppKinds[refs[i].Kind]
			if !ok {
				continue
			}
			o, err := get(gvk, ns, refs[i].Name)
			if err != nil {
				return err
			}
			if o != nil {
				refs[i].UID = o.UID
			}
		}
		return nil
	}
	for _, c := range m.Controllers {
		if err := fix(c.OwnerReferences, c.Namespace); err != nil {
			return err
		}
	}
	return fix(m.Pod.OwnerReferences, m.Pod.Namespace)
}

func whyCommand() *command {
	var file, node, format string
	var only []string
	var sf settingsFlags
	return &command{
		name: "why",
		help: "kubectl spindle why NAMESPACE/POD | -f MANIFEST: for each interface and IP family of the pod, every candidate pool\n" +
			"in the order the agent tries them and why it is used or refused (affinity, full, disabled, family, reservation),\n" +
			"computed with the agent's own selection code against the live objects. -f evaluates a Pod or workload manifest\n" +
			"that is not applied yet (- reads stdin); an unscheduled pod needs --node. Exits 1 when an interface gets no address.",
		bind: func(fs *pflag.FlagSet) {
			fs.StringVarP(&file, "filename", "f", "", "manifest to evaluate as a dry run (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob; - for stdin)")
			fs.StringVar(&node, "node", "", "node to evaluate on (default: the pod's spec.nodeName)")
			fs.StringArrayVar(&only, "interface", nil, "only this interface (repeatable); also evaluates an interface whose network is unknown")
			fs.StringVarP(&format, "output", "o", "", "output format: json or yaml")
			sf.bind(fs)
		},
		run: func(ctx context.Context, env *Env, _ *pflag.FlagSet, args []string) error {
			if err := checkFormat(format, "", "json", "yaml"); err != nil {
				return err
			}
			if (file == "") == (len(args) == 0) || len(args) > 1 {
				return usageErr("why: give one pod (NAMESPACE/NAME) or -f MANIFEST")
			}
			if err := env.connect(); err != nil {
				return err
			}
			in := &WhyInput{Only: only, DryRun: file != ""}
			var overlay map[string]*metav1.PartialObjectMetadata
			if file != "" {
				var data []byte
				var err error
				if file == "-" {
					data, err = io.ReadAll(env.Stdin)
				} else {
					data, err = os.ReadFile(file)
				}
				if err != nil {
					return usageErr("-f: %v", err)
				}
				m, err := ParseManifest(data, env.Namespace)
				if err != nil {
					return usageErr("-f %s: %v", file, err)
				}
				in.Pod, overlay = m.Pod, m.Controllers
				if err := fixOwnerUIDs(m, clusterLookup(ctx, env.Client, overlay)); err != nil {
					return err
				}
			} else {
				ref, err := ParsePodRef(args[0], env.Namespace)
				if err != nil {
					return usageErr("why: %v", err)
				}
				pod := &corev1.Pod{}
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, pod); err != nil {
					if apierrors.IsNotFound(err) {
						return findingsErr("pod %s not found; check the name, or evaluate a manifest with -f", ref)
					}
					return fmt.Errorf("failed to get pod %s: %w", ref, err)
				}
				in.Pod = pod
			}
			in.NodeName = in.Pod.Spec.NodeName
			if node != "" {
				in.NodeName = node
			}
			if in.NodeName == "" {
				nodes := &corev1.NodeList{}
				names := "the cluster's nodes"
				if err := env.Client.List(ctx, nodes); err == nil {
					var ns []string
					for _, n := range nodes.Items {
						ns = append(ns, n.Name)
					}
					sort.Strings(ns)
					names = strings.Join(ns, ", ")
				}
				return usageErr("pod %s/%s is not scheduled: pass --node (one of %s)", in.Pod.Namespace, in.Pod.Name, names)
			}
			var err error
			if in.Settings, in.SettingsUsed, err = sf.load(ctx, env.Client); err != nil {
				return err
			}
			ns := &corev1.Namespace{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: in.Pod.Namespace}, ns); err == nil {
				in.Namespace = ns
			} else if !apierrors.IsNotFound(err) {
				return fmt.Errorf("failed to get namespace %s: %w", in.Pod.Namespace, err)
			}
			n := &corev1.Node{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: in.NodeName}, n); err == nil {
				in.Node = n
			} else if !apierrors.IsNotFound(err) {
				return fmt.Errorf("failed to get node %s: %w", in.NodeName, err)
			}
			if in.Workload, err = podselect.WorkloadOf(in.Pod, clusterLookup(ctx, env.Client, overlay)); err != nil {
				return err
			}
			if in.IPAM, err = readIPAM(ctx, env.Client); err != nil {
				return err
			}
			nads := &nadv1.NetworkAttachmentDefinitionList{}
			if err := env.Client.List(ctx, nads); err != nil {
				return fmt.Errorf("failed to list NetworkAttachmentDefinitions: %w", err)
			}
			in.NADs = map[string]*nadv1.NetworkAttachmentDefinition{}
			for i := range nads.Items {
				in.NADs[nads.Items[i].Namespace+"/"+nads.Items[i].Name] = &nads.Items[i]
			}
			r := Explain(in)
			if format != "" {
				if err := writeStructured(env.Stdout, format, r); err != nil {
					return err
				}
			} else {
				WriteWhy(env, r)
			}
			if !r.OK {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
}
