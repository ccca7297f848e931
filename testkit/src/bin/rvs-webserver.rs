//! A minimal HTTP real server for demos and manual tests: answers every request with its
//! name. `rvs-webserver --listen 0.0.0.0:80 --name rs1` (run it inside a namespace with
//! `ip netns exec`).

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() {
    let mut listen = "0.0.0.0:80".to_string();
    let mut name = "rvs-webserver".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--name", Some(v)) => name = v,
            _ => {
                eprintln!("usage: rvs-webserver [--listen ADDR:PORT] [--name NAME]");
                std::process::exit(2);
            }
        }
    }
    let l = TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("rvs-webserver: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let stop = Arc::new(AtomicBool::new(false));
    for s in l.incoming().flatten() {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || testkit::net::serve(s, &name, &stop));
    }
}
