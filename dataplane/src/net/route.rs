//! Static IPv4 routes with longest-prefix match.
//!
//! Routes are kept sorted by prefix length, longest first, so the first match wins. That
//! is a linear scan: right for the handful of routes a director has (connected subnets, a
//! default route); a DIR-24-8 table can replace it behind the same `lookup`.

use super::addr::Ipv4Net;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv4Net,
    /// Gateway; `None` for a connected route (the destination is the next hop).
    pub via: Option<Ipv4Addr>,
    pub port: usize,
}

/// Where to send a packet: out of `port`, to the neighbour `next_hop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub port: usize,
    pub next_hop: Ipv4Addr,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn add(&mut self, r: Route) {
        let r = Route {
            prefix: Ipv4Net {
                addr: r.prefix.network(),
                len: r.prefix.len,
            },
            ..r
        };
        // Keep it stable: among equal lengths, the first added wins.
        let pos = self
            .routes
            .partition_point(|x| x.prefix.len >= r.prefix.len);
        self.routes.insert(pos, r);
    }
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes
            .iter()
            .find(|r| r.prefix.contains(dst))
            .map(|r| NextHop {
                port: r.port,
                next_hop: r.via.unwrap_or(dst),
            })
    }
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::default();
        let gw = Ipv4Addr::new(198, 18, 0, 1);
        t.add(Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: Some(gw),
            port: 0,
        });
        t.add(Route {
            prefix: "198.18.0.2/24".parse().unwrap(),
            via: None,
            port: 0,
        });
        t.add(Route {
            prefix: "198.18.0.128/25".parse().unwrap(),
            via: None,
            port: 1,
        });
        t.add(Route {
            prefix: "198.19.7.7/32".parse().unwrap(),
            via: Some(Ipv4Addr::new(198, 18, 0, 9)),
            port: 1,
        });
        let d = Ipv4Addr::new(198, 18, 0, 5);
        assert_eq!(
            t.lookup(d),
            Some(NextHop {
                port: 0,
                next_hop: d
            })
        );
        let d = Ipv4Addr::new(198, 18, 0, 200);
        assert_eq!(
            t.lookup(d),
            Some(NextHop {
                port: 1,
                next_hop: d
            })
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(198, 19, 7, 7)).unwrap().next_hop,
            Ipv4Addr::new(198, 18, 0, 9)
        );
        assert_eq!(
            t.lookup(Ipv4Addr::new(8, 8, 8, 8)),
            Some(NextHop {
                port: 0,
                next_hop: gw
            })
        );
        assert_eq!(t.iter().next().unwrap().prefix.len, 32);
    }

    #[test]
    fn no_default_no_route() {
        let mut t = RouteTable::default();
        t.add(Route {
            prefix: "198.18.0.0/24".parse().unwrap(),
            via: None,
            port: 0,
        });
        assert_eq!(t.lookup(Ipv4Addr::new(198, 18, 1, 1)), None);
    }
}
