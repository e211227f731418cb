export { NAT_FIX, Reachability, type ReachabilityDeps, type ReachabilityStatus, type ReachPath, type RelayTunnel, type Verification } from './reachability';
export { RouterPortMapping, type NatDiscovery, type NatGateway } from './port-mapping';
export { NatLibraryDiscovery, defaultGateway } from './nat-library';
export { SshRelayTunnel, fingerprint, hostKeyMatches, type RelaySettings } from './relay-tunnel';
export { isGlobalIPv6, isPublicIPv4, globalIPv6, publicIPv4, urlFor, type InterfaceTable } from './addresses';
export { healthzOver } from './probe';
