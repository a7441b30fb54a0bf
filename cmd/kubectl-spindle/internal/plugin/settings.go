package plugin

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/podselect"
)

// The chart's ConfigMap holds spindle-agent's flags as SPINDLE_AGENT_<FLAG>
// (upper case, '-' as '_'); see charts/spindle/templates/configmap.yaml.
const (
	configKeyPrefix   = "SPINDLE_AGENT_"
	defaultConfigName = "spindle-config"
)

// Setting is one agent setting the plugin assumed, and where it came from.
type Setting struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// settingsFlags are the agent's flags the plugin accepts as overrides.
type settingsFlags struct {
	fs                     *pflag.FlagSet
	spindleNamespace       string
	configName             string
	enableIPv4, enableIPv6 bool
	clusterDefaultNetwork  string
	subnetV4, subnetV6     string
	systemNamespace        string
}

// The agent's names of the settings, as on its command line.
var settingNames = []string{"enable-ipv4", "enable-ipv6", "cluster-default-network", "cluster-default-subnet-v4", "cluster-default-subnet-v6", "system-namespace"}

func (s *settingsFlags) bind(fs *pflag.FlagSet) {
	s.fs = fs
	fs.StringVar(&s.spindleNamespace, "spindle-namespace", "kube-system", "namespace Spindle is installed in (its ConfigMap holds the agent's settings)")
	fs.StringVar(&s.configName, "spindle-config", defaultConfigName, "name of Spindle's ConfigMap (else the ConfigMap of --spindle-namespace with SPINDLE_AGENT_ keys)")
	fs.BoolVar(&s.enableIPv4, "enable-ipv4", true, "override the agent's --enable-ipv4")
	fs.BoolVar(&s.enableIPv6, "enable-ipv6", false, "override the agent's --enable-ipv6")
	fs.StringVar(&s.clusterDefaultNetwork, "cluster-default-network", "", "override the agent's --cluster-default-network (namespace/name)")
	fs.StringVar(&s.subnetV4, "cluster-default-subnet-v4", "", "override the agent's --cluster-default-subnet-v4")
	fs.StringVar(&s.subnetV6, "cluster-default-subnet-v6", "", "override the agent's --cluster-default-subnet-v6")
	fs.StringVar(&s.systemNamespace, "system-namespace", "", "override the agent's --system-namespace (default: --spindle-namespace)")
}

// findConfig returns Spindle's ConfigMap: --spindle-config, else the one
// ConfigMap of the namespace with agent settings; nil when there is none.
func (s *settingsFlags) findConfig(ctx context.Context, c client.Client) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: s.spindleNamespace, Name: s.configName}, cm)
	if err == nil {
		return cm, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to read ConfigMap %s/%s (Spindle's settings; --spindle-namespace, --spindle-config): %w", s.spindleNamespace, s.configName, err)
	}
	if s.fs.Changed("spindle-config") {
		return nil, nil
	}
	list := &corev1.ConfigMapList{}
	if err := c.List(ctx, list, client.InNamespace(s.spindleNamespace)); err != nil {
		return nil, fmt.Errorf("failed to list ConfigMaps of %s (looking for Spindle's settings; --spindle-namespace): %w", s.spindleNamespace, err)
	}
	for i := range list.Items {
		if _, ok := list.Items[i].Data[configKeyPrefix+"ENABLE_IPV4"]; ok {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// load resolves the settings: flags given on the command line first, then
// the ConfigMap, then the agent's defaults.
func (s *settingsFlags) load(ctx context.Context, c client.Client) (*podselect.Settings, []Setting, error) {
	cm, err := s.findConfig(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	var data map[string]string
	cmName := ""
	if cm != nil {
		data, cmName = cm.Data, "ConfigMap "+cm.Namespace+"/"+cm.Name
	}
	flagValues := map[string]string{
		"enable-ipv4": strconv.FormatBool(s.enableIPv4), "enable-ipv6": strconv.FormatBool(s.enableIPv6),
		"cluster-default-network": s.clusterDefaultNetwork, "cluster-default-subnet-v4": s.subnetV4,
		"cluster-default-subnet-v6": s.subnetV6, "system-namespace": s.systemNamespace,
	}
	flagsSet := map[string]bool{}
	for _, n := range settingNames {
		flagsSet[n] = s.fs.Changed(n)
	}
	return ResolveSettings(flagValues, flagsSet, data, cmName, s.spindleNamespace)
}

// ResolveSettings merges the agent settings: a flag that was set wins, then
// the ConfigMap's SPINDLE_AGENT_<FLAG> key, then the agent's default. The
// system namespace defaults to the namespace Spindle runs in (the agent's
// POD_NAMESPACE).
func ResolveSettings(flagValues map[string]string, flagsSet map[string]bool, config map[string]string, configName, spindleNamespace string) (*podselect.Settings, []Setting, error) {
	defaults := map[string]string{"enable-ipv4": "true", "enable-ipv6": "false", "system-namespace": spindleNamespace}
	values := map[string]string{}
	var used []Setting
	for _, n := range settingNames {
		v, src := defaults[n], "spindle-agent default"
		if n == "system-namespace" {
			src = "the namespace Spindle runs in (--spindle-namespace)"
		}
		if cv, ok := config[ConfigKey(n)]; ok {
			v, src = cv, configName+" key "+ConfigKey(n)
		}
		if flagsSet[n] {
			v, src = flagValues[n], "flag --"+n
		}
		values[n] = v
		used = append(used, Setting{Name: n, Value: v, Source: src})
	}
	sort.SliceStable(used, func(i, j int) bool { return used[i].Name < used[j].Name })
	st := &podselect.Settings{ClusterDefaultNetwork: values["cluster-default-network"], SystemNamespace: values["system-namespace"]}
	st.DefaultSubnet.IPv4, st.DefaultSubnet.IPv6 = values["cluster-default-subnet-v4"], values["cluster-default-subnet-v6"]
	var err error
	if st.EnableIPv4, err = parseBoolSetting("enable-ipv4", values["enable-ipv4"]); err != nil {
		return nil, nil, err
	}
	if st.EnableIPv6, err = parseBoolSetting("enable-ipv6", values["enable-ipv6"]); err != nil {
		return nil, nil, err
	}
	return st, used, nil
}

// ConfigKey is the ConfigMap key of the agent flag name.
func ConfigKey(flag string) string {
	b := []byte(flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return configKeyPrefix + string(b)
}

func parseBoolSetting(name, v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageErr("setting %s = %q is not a boolean (fix the ConfigMap or pass --%s)", name, v, name)
	}
	return b, nil
}
