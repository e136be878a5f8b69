//! The prober: route and neighbour lookup, the packet socket, DR and TUN probes, verdicts.
