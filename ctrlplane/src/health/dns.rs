//! DNS_CHECK: a query for `name` of `type` (default SOA for ".") over UDP; success is an
//! answer with the query's id, NOERROR and at least one answer record (check_dns.c).
//! Messages are built and parsed with hickory-proto.

use super::resolve::Probe;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use std::str::FromStr;
use tokio::net::UdpSocket;

/// The query's wire form.
pub fn query(id: u16, name: &str, qtype: &str) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(name).map_err(|e| format!("DNS name {name:?}: {e}"))?;
    let t = RecordType::from_str(&qtype.to_ascii_uppercase())
        .map_err(|e| format!("DNS type {qtype:?}: {e}"))?;
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, t));
    m.to_bytes().map_err(|e| e.to_string())
}

/// Judges an answer to query `id`.
pub fn judge(id: u16, answer: &[u8]) -> Result<(), String> {
    let m = Message::from_vec(answer).map_err(|e| format!("unreadable DNS answer: {e}"))?;
    if m.id() != id || m.message_type() != MessageType::Response {
        return Err("not an answer to our query".into());
    }
    if m.response_code() != ResponseCode::NoError {
        return Err(format!("DNS answer {}", m.response_code()));
    }
    if m.answers().is_empty() {
        return Err("DNS answer without records".into());
    }
    Ok(())
}

pub async fn check(p: &Probe, qtype: &str, name: &str) -> Result<Option<u32>, String> {
    let words = p.target_words().replace(":tcp:", ":udp:");
    let id = rand_id(p);
    let q = query(id, name, qtype)?;
    let bind = p
        .bind
        .map(std::net::SocketAddr::V4)
        .unwrap_or(([0, 0, 0, 0], 0).into());
    let go = async {
        let s = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        s.connect(p.target).await.map_err(|e| e.to_string())?;
        s.send(&q).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = s.recv(&mut buf).await.map_err(|e| e.to_string())?;
            // A stray datagram is not the answer: keep waiting until the timeout.
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return judge(id, &buf[..n]);
            }
        }
    };
    match tokio::time::timeout(p.connect_timeout, go).await {
        Ok(r) => r
            .map(|_| None)
            .map_err(|e| format!("DNS check to {words} failed: {e}")),
        Err(_) => Err(format!("DNS check to {words} timed out")),
    }
}

fn rand_id(p: &Probe) -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(p) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{rdata, RData, Record};

    #[test]
    fn a_query_and_its_answers() {
        let q = query(7, "example.test.", "a").unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.queries()[0].query_type(), RecordType::A);
        let mut a = m.clone();
        a.set_message_type(MessageType::Response);
        assert_eq!(
            judge(7, &a.to_bytes().unwrap()),
            Err("DNS answer without records".into())
        );
        a.add_answer(Record::from_rdata(
            Name::from_ascii("example.test.").unwrap(),
            60,
            RData::A(rdata::A::new(198, 18, 0, 53)),
        ));
        assert_eq!(judge(7, &a.to_bytes().unwrap()), Ok(()));
        assert!(judge(8, &a.to_bytes().unwrap()).is_err());
        a.set_response_code(ResponseCode::ServFail);
        assert!(judge(7, &a.to_bytes().unwrap()).is_err());
        assert!(query(1, "x.", "NOPE").is_err());
    }
}
