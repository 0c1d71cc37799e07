//! A real DNS server on loopback (UDP) answering from a table the test controls, and counting
//! the queries it gets.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// What the server answers for one name and type.
#[derive(Debug, Clone)]
pub enum Answer {
    Records(Vec<RData>),
    NxDomain,
    ServFail,
}

#[derive(Clone)]
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<HashMap<(String, RecordType), Answer>>>,
    /// The answer for names not in the zone (NXDOMAIN unless set).
    default: Arc<Mutex<Option<Answer>>>,
    queries: Arc<Mutex<HashMap<(String, RecordType), usize>>>,
}

impl DnsServer {
    /// A server that answers SERVFAIL to every query.
    pub async fn start_failing() -> DnsServer {
        let s = DnsServer::start().await;
        *s.default.lock().unwrap() = Some(Answer::ServFail);
        s
    }

    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let server = DnsServer {
            addr,
            zone: Arc::default(),
            default: Arc::default(),
            queries: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let response = s.answer(&query);
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        server
    }

    fn answer(&self, query: &Message) -> Message {
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.metadata.authoritative = true;
        let Some(q) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return response;
        };
        response.add_query(q.clone());
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let key = (name.clone(), q.query_type());
        *self.queries.lock().unwrap().entry(key.clone()).or_default() += 1;
        let zone = self.zone.lock().unwrap();
        match zone.get(&key) {
            Some(Answer::Records(rdatas)) => {
                for r in rdatas {
                    response.add_answer(Record::from_rdata(q.name().clone(), 60, r.clone()));
                }
            }
            Some(Answer::NxDomain) => response.metadata.response_code = ResponseCode::NXDomain,
            Some(Answer::ServFail) => response.metadata.response_code = ResponseCode::ServFail,
            None if self.default.lock().unwrap().is_some() => {
                response.metadata.response_code = ResponseCode::ServFail;
            }
            None => {
                // The name exists (some record is set for it) but not this type: NOERROR, empty.
                let exists = zone.keys().any(|(n, _)| *n == name);
                if !exists {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
            }
        }
        response
    }

    pub fn set(&self, name: &str, rtype: RecordType, answer: Answer) {
        self.zone
            .lock()
            .unwrap()
            .insert((name.to_ascii_lowercase(), rtype), answer);
    }

    pub fn mx(&self, domain: &str, hosts: &[(u16, &str)]) {
        let records = hosts
            .iter()
            .map(|(pref, host)| {
                RData::MX(MX::new(*pref, Name::from_str(&format!("{host}.")).unwrap()))
            })
            .collect();
        self.set(domain, RecordType::MX, Answer::Records(records));
    }

    pub fn txt(&self, name: &str, text: &str) {
        // TXT strings are at most 255 bytes each; long values (DKIM keys) are split.
        let chunks: Vec<String> = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let rdata = RData::TXT(hickory_proto::rr::rdata::TXT::new(chunks));
        self.set(name, RecordType::TXT, Answer::Records(vec![rdata]));
    }

    pub fn a(&self, host: &str, ip: Ipv4Addr) {
        self.set(host, RecordType::A, Answer::Records(vec![RData::A(A(ip))]));
    }

    pub fn queries(&self, name: &str, rtype: RecordType) -> usize {
        self.queries
            .lock()
            .unwrap()
            .get(&(name.to_ascii_lowercase(), rtype))
            .copied()
            .unwrap_or(0)
    }
}
