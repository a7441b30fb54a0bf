package subnetcontroller

// Reasons of the Events the subnet controllers record (all Warnings). They
// are stable: alerts and scripts may match on them (docs/events.md).
const (
	// ReasonInvalidSubnetAnnotation (on the application): its pod
	// template's subnet annotations do not parse.
	ReasonInvalidSubnetAnnotation = "InvalidSubnetAnnotation"
	// ReasonFixedIPNumberRequired (on the application): a third-party
	// controller's pods must name a fixed ippool-ip-number.
	ReasonFixedIPNumberRequired = "FixedIPNumberRequired"
	// ReasonSubnetNotFound (on the application): the SpiderSubnet named
	// does not exist.
	ReasonSubnetNotFound = "SubnetNotFound"
	// ReasonInvalidSubnet (on the application): the SpiderSubnet cannot
	// serve the family asked for.
	ReasonInvalidSubnet = "InvalidSubnet"
	// ReasonSubnetOverlaps (on the subnet and on applications naming it):
	// another SpiderSubnet created before it covers the same addresses.
	ReasonSubnetOverlaps = "SubnetOverlaps"
	// ReasonSubnetExhausted (on the application): the subnet has too few
	// free addresses for the pool the application needs.
	ReasonSubnetExhausted = "SubnetExhausted"
	// ReasonPoolOutsideSubnet (on the subnet, related to the pool): a pool
	// of the subnet's prefix has addresses outside the subnet's ips.
	ReasonPoolOutsideSubnet = "PoolOutsideSubnet"
)
