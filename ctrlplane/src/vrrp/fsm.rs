//! One VRRP instance's state machine, as RFC 5798 §6.4 and keepalived (vrrp.c
//! `vrrp_state_backup`, `vrrp_state_master_rx`) run it, on an explicit clock so that it
//! can be tested step by step. It never touches a socket: it returns what to do.
//!
//! - Timers: Master_Down_Interval = 3 × the master's advert interval + Skew_Time, with
//!   Skew_Time = (256 − priority)/256 s in version 2 and (256 − priority) × interval /
//!   256 in version 3. A priority-0 advert (the master stepping down) cuts the wait to
//!   Skew_Time.
//! - A BACKUP accepts an advert (and restarts its down timer) with `nopreempt`, while
//!   `preempt_delay` runs, or when its priority is not below ours; a lower one is ignored
//!   and our timer runs out: preemption. Version 3 backups adopt the master's interval.
//! - A MASTER that hears a higher priority (or an equal one from a higher address)
//!   sends one last advert and becomes BACKUP; a lower one makes it advertise and
//!   announce its addresses at once (keepalived's "forcing a new election", with
//!   `higher_prio_send_advert` and the lower-priority GARP always on, so a healed split
//!   brain leaves the winner announced); a priority-0 advert makes it advertise.
//! - The owner (priority 255) starts as MASTER at once.

use super::packet::Advert;
use std::net::Ipv4Addr;
use std::time::Duration;

/// In JSON as keepalived's words, as the text and the notify scripts have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
}

impl State {
    /// keepalived's words, as notify scripts get them.
    pub fn word(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What the instance must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority now.
    Advert(u8),
    /// The state changed (announce: gratuitous ARPs on MASTER, notify scripts, overlay).
    Became(State),
    /// Gratuitous ARPs again: a MASTER that heard a lower-priority master (a split brain
    /// healing) re-announces its addresses, which the other may have taken meanwhile
    /// (keepalived issue #166).
    Announce,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub version: u8,
    pub advert_cs: u16,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// Our source address, which breaks ties of priority.
    pub my_ip: Ipv4Addr,
    /// `state MASTER`: below 255 it still starts as BACKUP, but waits only one advert
    /// interval and the skew for another master (keepalived's vrrp_scheduler.c).
    pub want_master: bool,
}

#[derive(Debug, Clone)]
pub struct Fsm {
    p: Params,
    pub state: State,
    /// Effective priority (configured plus tracking).
    pub priority: u8,
    /// The master's advert interval (ours until a version 3 master says otherwise).
    pub master_adv_cs: u16,
    pub master_ip: Option<Ipv4Addr>,
    /// When the running timer fires: the advert timer as MASTER, the down timer as
    /// BACKUP; None in INIT and FAULT.
    pub deadline: Option<Duration>,
    /// While `preempt_delay` runs (from start, from leaving FAULT, or from first hearing
    /// a lower-priority master, as keepalived), a better backup does not preempt.
    preempt_until: Option<Duration>,
    /// Why the last change of state happened (rvsadm --vrrp, the log).
    pub cause: &'static str,
    /// The running BACKUP timer is the skew time after the master's priority 0.
    after_zero: bool,
}

fn cs(v: u32) -> Duration {
    Duration::from_millis(u64::from(v) * 10)
}

impl Fsm {
    pub fn new(p: Params, priority: u8) -> Fsm {
        Fsm {
            master_adv_cs: p.advert_cs,
            p,
            state: State::Init,
            priority,
            master_ip: None,
            deadline: None,
            preempt_until: None,
            cause: "",
            after_zero: false,
        }
    }

    pub fn skew(&self) -> Duration {
        let weight = 256 - u32::from(self.priority);
        if self.p.version == 2 {
            Duration::from_micros(u64::from(weight) * 1_000_000 / 256)
        } else {
            Duration::from_micros(u64::from(weight) * u64::from(self.master_adv_cs) * 10_000 / 256)
        }
    }

    pub fn master_down(&self) -> Duration {
        cs(3 * u32::from(self.master_adv_cs)) + self.skew()
    }

    fn advert_interval(&self) -> Duration {
        cs(u32::from(self.p.advert_cs))
    }

    /// Starts the instance at `now`.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        if self.priority == 255 {
            self.cause = "owner (priority 255)";
            return self.enter_master(now);
        }
        self.cause = "start";
        let acts = self.enter_backup(now);
        if self.p.want_master {
            self.deadline = Some(now + self.advert_interval() + self.skew());
        }
        acts
    }

    fn enter_master(&mut self, now: Duration) -> Vec<Action> {
        self.state = State::Master;
        self.master_ip = Some(self.p.my_ip);
        self.deadline = Some(now + self.advert_interval());
        vec![Action::Advert(self.priority), Action::Became(State::Master)]
    }

    fn enter_backup(&mut self, now: Duration) -> Vec<Action> {
        let was = self.state;
        self.after_zero = false;
        if matches!(was, State::Init | State::Fault) && !self.p.preempt_delay.is_zero() {
            self.preempt_until = Some(now + self.p.preempt_delay);
        }
        self.state = State::Backup;
        self.master_adv_cs = self.p.advert_cs;
        self.deadline = Some(now + self.master_down());
        if was == State::Backup {
            Vec::new()
        } else {
            vec![Action::Became(State::Backup)]
        }
    }

    /// The running timer fired (call when `now` reached `deadline`).
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        match self.state {
            State::Backup => {
                self.cause = if self.after_zero {
                    "the master sent priority 0"
                } else {
                    "no advert within the master down interval"
                };
                self.enter_master(now)
            }
            State::Master => {
                self.deadline = Some(now + self.advert_interval());
                vec![Action::Advert(self.priority)]
            }
            State::Init | State::Fault => Vec::new(),
        }
    }

    /// An advert that passed the packet checks arrived from `src`.
    pub fn on_advert(&mut self, now: Duration, src: Ipv4Addr, a: &Advert) -> Vec<Action> {
        match self.state {
            State::Backup => {
                if a.priority >= self.priority {
                    // A master at least as good: nothing to delay.
                    self.preempt_until = None;
                } else if a.priority > 0
                    && self.preempt_until.is_none()
                    && !self.p.preempt_delay.is_zero()
                {
                    self.preempt_until = Some(now + self.p.preempt_delay);
                }
                let delaying = self.preempt_until.is_some_and(|u| now < u);
                if a.priority == 0 {
                    self.deadline = Some(now + self.skew());
                    self.after_zero = true;
                } else if self.p.nopreempt || a.priority >= self.priority || delaying {
                    self.after_zero = false;
                    if self.p.version == 3 && a.interval_cs > 0 {
                        self.master_adv_cs = a.interval_cs;
                    }
                    self.master_ip = Some(src);
                    self.deadline = Some(now + self.master_down());
                }
                Vec::new()
            }
            State::Master => {
                if a.priority == 0 {
                    self.deadline = Some(now + self.advert_interval());
                    return vec![Action::Advert(self.priority)];
                }
                if a.priority > self.priority
                    || (a.priority == self.priority && u32::from(src) > u32::from(self.p.my_ip))
                {
                    // keepalived's `higher_prio_send_advert`, always: one last advert
                    // with our priority tells the winner that another master was
                    // active, so it announces its addresses again (issue #166).
                    let mut acts = vec![Action::Advert(self.priority)];
                    self.cause = "a master of higher priority";
                    acts.extend(self.enter_backup(now));
                    if self.p.version == 3 && a.interval_cs > 0 {
                        self.master_adv_cs = a.interval_cs;
                        self.deadline = Some(now + self.master_down());
                    }
                    self.master_ip = Some(src);
                    return acts;
                }
                // A lower priority master: assert ourselves at once, adverts and ARP.
                self.deadline = Some(now + self.advert_interval());
                vec![Action::Advert(self.priority), Action::Announce]
            }
            State::Init | State::Fault => Vec::new(),
        }
    }

    /// Tracking moved the effective priority. A MASTER advertises the new one at once
    /// (so that a better backup can take over); the owner's 255 does not move.
    pub fn set_priority(&mut self, now: Duration, priority: u8) -> Vec<Action> {
        let priority = priority.max(1);
        if priority == self.priority {
            return Vec::new();
        }
        self.priority = priority;
        if self.state == State::Master {
            self.deadline = Some(now + self.advert_interval());
            return vec![Action::Advert(priority)];
        }
        Vec::new()
    }

    /// A tracked object with weight 0 failed (`on`) or recovered.
    pub fn fault(&mut self, now: Duration, on: bool) -> Vec<Action> {
        match (on, self.state) {
            (true, State::Fault) | (false, State::Backup | State::Master | State::Init) => {
                Vec::new()
            }
            (true, was) => {
                self.cause = "a tracked object failed";
                self.state = State::Fault;
                self.deadline = None;
                let mut acts = Vec::new();
                if was == State::Master {
                    acts.push(Action::Advert(0));
                }
                acts.push(Action::Became(State::Fault));
                acts
            }
            (false, State::Fault) => {
                self.cause = "the tracked objects recovered";
                self.enter_backup(now)
            }
        }
    }

    /// Moves a sync group member to the state its group took.
    pub fn force(&mut self, now: Duration, to: State) -> Vec<Action> {
        self.cause = "its sync group";
        match (self.state, to) {
            (a, b) if a == b => Vec::new(),
            (_, State::Master) => self.enter_master(now),
            (State::Master, State::Backup) => {
                let mut acts = vec![Action::Advert(0)];
                acts.extend(self.enter_backup(now));
                acts
            }
            (_, State::Backup) => self.enter_backup(now),
            (_, State::Fault) => self.fault(now, true),
            (_, State::Init) => Vec::new(),
        }
    }

    /// Shutting down: a MASTER sends priority 0 so that a backup takes over within its
    /// skew time.
    pub fn stop(&mut self) -> Vec<Action> {
        let was = self.state;
        self.state = State::Init;
        self.deadline = None;
        if was == State::Master {
            vec![Action::Advert(0)]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

    fn fsm(version: u8, advert_cs: u16, priority: u8) -> Fsm {
        Fsm::new(
            Params {
                version,
                advert_cs,
                nopreempt: false,
                preempt_delay: Duration::ZERO,
                my_ip: ME,
                want_master: false,
            },
            priority,
        )
    }

    fn adv(priority: u8, interval_cs: u16) -> Advert {
        Advert {
            version: 3,
            vrid: 51,
            priority,
            interval_cs,
            addrs: vec![],
            pass: None,
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// keepalived's worked numbers: v2 at 1 s and priority 100 waits 3.609 s; v3 at
    /// 0.1 s waits 0.36 s.
    #[test]
    fn master_down_interval_and_skew() {
        let f = fsm(2, 100, 100);
        assert_eq!(f.skew(), Duration::from_micros(609_375));
        assert_eq!(f.master_down(), Duration::from_micros(3_609_375));
        let f = fsm(3, 10, 100);
        assert_eq!(f.master_down(), Duration::from_micros(360_937));
    }

    #[test]
    fn a_backup_takes_over_when_adverts_stop() {
        let mut f = fsm(3, 10, 100);
        assert_eq!(f.start(ms(0)), vec![Action::Became(State::Backup)]);
        // Adverts every 100 ms from a higher priority keep it backup.
        for t in (100..1000).step_by(100) {
            assert!(f.on_advert(ms(t), PEER, &adv(150, 10)).is_empty());
            assert_eq!(f.master_ip, Some(PEER));
        }
        let due = f.deadline.unwrap();
        assert_eq!(due, ms(900) + f.master_down());
        assert!(f.on_timer(due).contains(&Action::Became(State::Master)));
        assert_eq!(f.state, State::Master);
        assert_eq!(f.on_timer(f.deadline.unwrap()), vec![Action::Advert(100)]);
    }

    #[test]
    fn state_master_waits_one_interval_only() {
        let mut f = fsm(2, 100, 100);
        f.p.want_master = true;
        assert_eq!(f.start(ms(0)), vec![Action::Became(State::Backup)]);
        assert_eq!(f.deadline, Some(ms(1000) + f.skew()));
    }

    #[test]
    fn priority_zero_cuts_the_wait_to_the_skew() {
        let mut f = fsm(2, 100, 200);
        f.start(ms(0));
        f.on_advert(ms(500), PEER, &adv(250, 100));
        f.on_advert(ms(600), PEER, &adv(0, 100));
        assert_eq!(f.deadline, Some(ms(600) + f.skew()));
        assert!(f.skew() < f.master_down());
        // Its timer fires: MASTER, and that is why.
        let at = f.deadline.unwrap();
        f.on_timer(at);
        assert_eq!(
            (f.state, f.cause),
            (State::Master, "the master sent priority 0")
        );
        // Silence alone is the other cause.
        let mut g = fsm(2, 100, 200);
        g.start(ms(0));
        let at = g.deadline.unwrap();
        g.on_timer(at);
        assert_eq!(g.cause, "no advert within the master down interval");
    }

    #[test]
    fn preemption_and_nopreempt() {
        // A lower priority master is ignored by a better backup, whose timer runs out.
        let mut f = fsm(3, 10, 150);
        f.start(ms(0));
        let due = f.deadline.unwrap();
        f.on_advert(ms(100), PEER, &adv(100, 10));
        assert_eq!(f.deadline, Some(due), "lower priority: timer not restarted");
        // With nopreempt it stays backup as long as the master advertises.
        let mut n = fsm(3, 10, 150);
        n.p.nopreempt = true;
        n.start(ms(0));
        n.on_advert(ms(100), PEER, &adv(100, 10));
        assert_eq!(n.deadline, Some(ms(100) + n.master_down()));
        // preempt_delay: the same until the delay is over.
        let mut d = fsm(3, 10, 150);
        d.p.preempt_delay = Duration::from_secs(2);
        d.start(ms(0));
        d.on_advert(ms(1000), PEER, &adv(100, 10));
        assert_eq!(d.deadline, Some(ms(1000) + d.master_down()));
        let due = d.deadline.unwrap();
        d.on_advert(ms(2100), PEER, &adv(100, 10));
        assert_eq!(d.deadline, Some(due));
        // Leaving FAULT starts the delay again (keepalived), so a recovering backup does
        // not preempt at once.
        d.fault(ms(3000), true);
        d.fault(ms(4000), false);
        d.on_advert(ms(4100), PEER, &adv(100, 10));
        assert_eq!(d.deadline, Some(ms(4100) + d.master_down()));
        // A master at least as good ends it; a lower one heard after that starts it
        // afresh, and once it is over the lower master is ignored (preemption).
        d.on_advert(ms(4200), PEER, &adv(200, 10));
        d.on_advert(ms(4300), PEER, &adv(100, 10));
        assert_eq!(d.deadline, Some(ms(4300) + d.master_down()));
        let due = d.deadline.unwrap();
        d.on_advert(ms(6400), PEER, &adv(100, 10));
        assert_eq!(d.deadline, Some(due));
    }

    #[test]
    fn a_master_yields_to_higher_priority_or_higher_address_and_asserts_over_lower() {
        let mut f = fsm(2, 100, 100);
        f.start(ms(0));
        f.on_timer(f.deadline.unwrap());
        assert_eq!(f.state, State::Master);
        assert_eq!(
            f.on_advert(ms(5000), PEER, &adv(50, 100)),
            vec![Action::Advert(100), Action::Announce]
        );
        assert_eq!(f.state, State::Master);
        // Equal priority from a higher address wins; a last advert tells it.
        assert_eq!(
            f.on_advert(ms(5100), PEER, &adv(100, 100)),
            vec![Action::Advert(100), Action::Became(State::Backup)]
        );
        assert_eq!(f.master_ip, Some(PEER));
        let mut g = fsm(2, 100, 100);
        g.p.my_ip = Ipv4Addr::new(198, 18, 0, 9);
        g.start(ms(0));
        g.on_timer(g.deadline.unwrap());
        assert_eq!(
            g.on_advert(ms(5000), PEER, &adv(100, 100)),
            vec![Action::Advert(100), Action::Announce]
        );
    }

    #[test]
    fn a_version_3_backup_adopts_the_masters_interval() {
        let mut f = fsm(3, 100, 100);
        f.start(ms(0));
        f.on_advert(ms(10), PEER, &adv(200, 10));
        assert_eq!(f.master_adv_cs, 10);
        assert_eq!(f.deadline, Some(ms(10) + f.master_down()));
        assert!(f.master_down() < ms(400));
    }

    #[test]
    fn the_owner_starts_master_and_stop_sends_priority_zero() {
        let mut f = fsm(2, 100, 255);
        assert_eq!(
            f.start(ms(0)),
            vec![Action::Advert(255), Action::Became(State::Master)]
        );
        assert_eq!(f.stop(), vec![Action::Advert(0)]);
        let mut b = fsm(2, 100, 100);
        b.start(ms(0));
        assert!(b.stop().is_empty(), "a backup says nothing when it stops");
    }

    #[test]
    fn fault_and_recovery() {
        let mut f = fsm(3, 10, 100);
        f.start(ms(0));
        f.on_timer(f.deadline.unwrap());
        assert_eq!(
            f.fault(ms(1000), true),
            vec![Action::Advert(0), Action::Became(State::Fault)]
        );
        assert_eq!(f.deadline, None);
        assert!(f.on_advert(ms(1100), PEER, &adv(50, 10)).is_empty());
        assert_eq!(
            f.fault(ms(2000), false),
            vec![Action::Became(State::Backup)]
        );
        assert_eq!(f.deadline, Some(ms(2000) + f.master_down()));
    }

    #[test]
    fn a_master_announces_a_new_priority() {
        let mut f = fsm(3, 10, 100);
        f.start(ms(0));
        f.on_timer(f.deadline.unwrap());
        assert_eq!(f.set_priority(ms(500), 80), vec![Action::Advert(80)]);
        assert!(f.set_priority(ms(600), 80).is_empty());
    }
}
