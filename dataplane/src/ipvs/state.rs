//! Connection states and timeouts, table-driven as in ip_vs_proto_tcp.c.
//!
//! The next TCP state is looked up by (table, flag class, current state). The flag class
//! has priority rst > syn > fin > ack; a segment with none of them moves to CLOSE, as in
//! the kernel. INPUT is client -> server, OUTPUT server -> client, and INPUT_ONLY applies
//! while no reply has been seen (always for DR and TUN).

use crate::packet::tcp::flags as tf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

pub const TCP_STATES: usize = 11;
/// The single UDP state ("UDP" in listings), stored as this value.
pub const UDP_STATE: u8 = 0;

impl TcpState {
    pub fn from_u8(v: u8) -> TcpState {
        use TcpState::*;
        [
            None,
            Established,
            SynSent,
            SynRecv,
            FinWait,
            TimeWait,
            Close,
            CloseWait,
            LastAck,
            Listen,
            SynAck,
        ]
        .get(usize::from(v))
        .copied()
        .unwrap_or(Close)
    }
    /// ipvsadm's name in `-L -c`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to real server.
    Input,
    /// Real server to client (NAT/FULLNAT replies).
    Output,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [TcpState; TCP_STATES];

/// [syn, fin, ack, rst] rows for INPUT, OUTPUT, INPUT_ONLY (tcp_states in the kernel).
#[rustfmt::skip]
const TABLE: [[Row; 4]; 3] = [
    // INPUT      sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next state for a segment with `flags` travelling in `dir`. `input_only` selects the
/// INPUT_ONLY table for input segments.
pub fn tcp_next(cur: TcpState, flags: u8, dir: Dir, input_only: bool) -> TcpState {
    let class = if flags & tf::RST != 0 {
        3
    } else if flags & tf::SYN != 0 {
        0
    } else if flags & tf::FIN != 0 {
        1
    } else if flags & tf::ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    let table = match (dir, input_only) {
        (Dir::Output, _) => 1,
        (Dir::Input, false) => 0,
        (Dir::Input, true) => 2,
    };
    TABLE[table][class][cur as usize]
}

/// Timeouts in seconds: TCP per state, UDP, and their `--set tcp tcpfin udp` knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; TCP_STATES],
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        // ip_vs_proto_tcp.c tcp_timeouts, ip_vs_proto_udp.c udp_timeouts.
        Timeouts {
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
        }
    }
}

impl Timeouts {
    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }
    /// `ipvsadm --set tcp tcpfin udp`: changes ESTABLISHED, FIN_WAIT and UDP; 0 keeps the
    /// current value.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: u8 = tf::SYN;
    const SA_: u8 = tf::SYN | tf::ACK;
    const A: u8 = tf::ACK;
    const F: u8 = tf::FIN | tf::ACK;
    const R: u8 = tf::RST;

    /// The engine's fast path (`IpvsWorker::transition`) skips the tables for an ACK
    /// (without SYN, FIN or RST) on an established connection: every table must keep it
    /// established, with or without PSH/URG.
    #[test]
    fn an_ack_keeps_an_established_connection_established_in_every_table() {
        for dir in [Dir::Input, Dir::Output] {
            for input_only in [false, true] {
                for extra in [0, tf::PSH, tf::URG, tf::PSH | tf::URG] {
                    assert_eq!(
                        tcp_next(TcpState::Established, A | extra, dir, input_only),
                        TcpState::Established,
                        "{dir:?} input_only={input_only} flags={:#x}",
                        A | extra
                    );
                }
            }
        }
    }

    fn run(steps: &[(u8, Dir)], input_only: bool) -> Vec<TcpState> {
        let mut s = TcpState::None;
        steps
            .iter()
            .map(|&(f, d)| {
                s = tcp_next(s, f, d, input_only);
                s
            })
            .collect()
    }

    #[test]
    fn nat_handshake_and_close() {
        use Dir::*;
        let v = run(
            &[
                (S, Input),
                (SA_, Output),
                (A, Input),
                (F, Input),
                (A, Output),
                (F, Output),
                (A, Input),
            ],
            false,
        );
        use TcpState::*;
        assert_eq!(
            v,
            vec![
                SynRecv,
                SynRecv,
                Established,
                CloseWait,
                CloseWait,
                TimeWait,
                TimeWait
            ]
        );
    }

    #[test]
    fn server_closes_first() {
        use Dir::*;
        use TcpState::*;
        let v = run(
            &[
                (S, Input),
                (SA_, Output),
                (A, Input),
                (F, Output),
                (A, Input),
                (F, Input),
            ],
            false,
        );
        assert_eq!(
            v,
            vec![SynRecv, SynRecv, Established, FinWait, FinWait, TimeWait]
        );
    }

    #[test]
    fn dr_sees_only_input() {
        use Dir::*;
        use TcpState::*;
        let v = run(
            &[(S, Input), (A, Input), (A, Input), (F, Input), (A, Input)],
            true,
        );
        assert_eq!(v, vec![SynRecv, Established, Established, FinWait, FinWait]);
        assert_eq!(tcp_next(Established, R, Input, true), Close);
        assert_eq!(
            tcp_next(SynAck, R, Input, false),
            SynRecv,
            "INPUT rst on SYNACK differs from INPUT_ONLY"
        );
        assert_eq!(tcp_next(SynAck, R, Input, true), Close);
    }

    #[test]
    fn priority_and_no_flags() {
        use TcpState::*;
        assert_eq!(
            tcp_next(Established, S | R, Dir::Input, false),
            Close,
            "rst beats syn"
        );
        assert_eq!(tcp_next(Established, 0, Dir::Input, false), Close);
        assert_eq!(
            tcp_next(None, A, Dir::Input, false),
            Close,
            "a bare ACK does not open"
        );
    }

    #[test]
    fn timeouts_and_set() {
        let mut t = Timeouts::default();
        assert_eq!(
            (
                t.tcp(TcpState::Established),
                t.tcp(TcpState::FinWait),
                t.udp
            ),
            (900, 120, 300)
        );
        assert_eq!(t.tcp(TcpState::SynRecv), 60);
        assert_eq!(t.tcp(TcpState::None), 2);
        t.set(3600, 0, 30);
        assert_eq!(
            (
                t.tcp(TcpState::Established),
                t.tcp(TcpState::FinWait),
                t.udp
            ),
            (3600, 120, 30)
        );
        assert_eq!(TcpState::from_u8(5).name(), "TIME_WAIT");
    }
}
