//! Scheduling a new connection (the kernel's `ip_vs_schedule` and
//! `ip_vs_sched_persist`): persistence templates first, then this worker's copy of the
//! service's scheduler; the connection is created bound to the real server chosen, with
//! a FULLNAT local port when the method needs one.

use super::conn::Fwd;
use super::conn::{flags as cf, Conn, Key, NIL};
use super::dest::loads_into;
use super::engine::IpvsWorker;
use super::sched::Flow;
use super::service::{IpvsTable, Service};
use super::state::TcpState;
use crate::packet::ipv4::protocol;
use crate::packet::IpHdr;
use crate::stats::DropReason;
use std::net::Ipv4Addr;

impl IpvsWorker {
    /// Creates the connection for the first packet of a flow (and its persistence
    /// template), or says why not.
    pub(super) fn schedule(
        &mut self,
        svc: &Service,
        h: &IpHdr,
        ipvs: &IpvsTable,
        now_s: u32,
    ) -> Result<u32, DropReason> {
        let (template, i) = match svc.persistence {
            Some(_) => self.schedule_persist(svc, h, ipvs, now_s)?,
            None => (NIL, self.pick(svc, h, now_s).ok_or(DropReason::NoDest)?),
        };
        let rs = &svc.dests[i];
        let dport = if rs.port == 0 { h.dport } else { rs.port };
        let mut c = Conn::new(
            h.proto,
            (h.src, h.sport),
            (h.dst, h.dport),
            (rs.addr, dport),
            rs.fwd,
            rs.slot,
        );
        if rs.fwd == Fwd::FullNat {
            let (laddr, lport) = self
                .lports
                .alloc(&self.conns, svc, rs.addr, dport, h.proto)
                .ok_or(DropReason::NoLocalPort)?;
            c.laddr = laddr.into();
            c.lport = lport;
        }
        c.state = TcpState::None as u8;
        c.expires = now_s
            + if h.proto == protocol::TCP {
                self.timeouts.tcp(TcpState::None)
            } else {
                self.timeouts.udp
            };
        c.control = template;
        let ci = self
            .conns
            .insert(c)
            .map_err(|_| DropReason::ConnTableFull)?;
        if template != NIL {
            self.conns.get_mut(template).n_control += 1;
        }
        self.bind_dest(rs.slot);
        if let Some(s) = self.stats.services.get(svc.slot as usize) {
            s.conns.inc();
        }
        Ok(ci)
    }

    /// A persistent service: the client's template decides the real server while it
    /// lives (and its real server is available); otherwise a new template is made.
    /// Returns the template and the index of the real server in the service.
    fn schedule_persist(
        &mut self,
        svc: &Service,
        h: &IpHdr,
        ipvs: &IpvsTable,
        now_s: u32,
    ) -> Result<(u32, usize), DropReason> {
        let Some(pers) = svc.persistence else {
            return Err(DropReason::NoDest);
        };
        let masked = Ipv4Addr::from(u32::from(h.src) & u32::from(pers.netmask));
        let tkey = Key {
            proto: h.proto,
            saddr: masked.into(),
            sport: 0,
            daddr: h.dst.into(),
            dport: svc.port,
        };
        if let Some(ti) = self.conns.lookup_template(&tkey) {
            let t = *self.conns.get(ti);
            let d = self.dests[t.dest as usize];
            let quiescent = ipvs.expire_quiescent_template && d.weight == 0;
            if d.present && !quiescent {
                if let Some(i) = svc.dests.iter().position(|r| r.slot == t.dest) {
                    // Each use extends the template's life.
                    self.conns.set_expires(ti, now_s + pers.timeout);
                    return Ok((ti, i));
                }
            } else if t.n_control == 0 {
                self.unbind_and_remove(ti);
            }
        }
        let i = self.pick(svc, h, now_s).ok_or(DropReason::NoDest)?;
        let rs = &svc.dests[i];
        let mut t = Conn::new(
            h.proto,
            (masked, 0),
            (h.dst, svc.port),
            (rs.addr, if svc.port == 0 { 0 } else { rs.port }),
            rs.fwd,
            rs.slot,
        );
        t.flags |= cf::TEMPLATE;
        t.flags &= !cf::INACTIVE;
        t.state = 0;
        t.expires = now_s + pers.timeout;
        let ti = self
            .conns
            .insert(t)
            .map_err(|_| DropReason::ConnTableFull)?;
        self.bind_template(rs.slot);
        Ok((ti, i))
    }

    /// This worker's scheduler for the service picks a real server (its index).
    fn pick(&mut self, svc: &Service, h: &IpHdr, now_s: u32) -> Option<usize> {
        let rt = self.svcs.get_mut(svc.slot as usize)?.as_mut()?;
        loads_into(svc, &self.dests, &mut self.loads);
        let flow = Flow {
            saddr: h.src,
            sport: h.sport,
            daddr: h.dst,
            dport: h.dport,
        };
        rt.sched.pick(&self.loads, &flow, u64::from(now_s))
    }
}
