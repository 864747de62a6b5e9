//! Login load generator: each login is a fresh TCP connection to Prosody's c2s port (no TLS: the
//! benchmark measures authentication, so TLS is off and unencrypted auth allowed for it), stream
//! open, SASL, stream restart, resource bind, and then (`--after-bind`) a stream close, awaiting the
//! server's (`close`, the default); the connection dropped without one, as a closed tab's is
//! (`drop`); or the session kept open until every login is done, as an open page's is (`hold`). A
//! fixed number of logins run concurrently. Prints one JSON line: logins/s, latency percentiles
//! (connect to bound), the server's CPU per login from /proc/<pid>/stat before and after, refusals
//! by SASL condition and text, errors (no answer within 60 s, a closed connection), and how many
//! logins were bound in each second of the run.
//!
//!   loadgen --port P --host example.test
//!           --mech PLAIN|X-TOKEN|SASL-HMAC|PLAIN-PASSWORD|SCRAM-SHA-1|SCRAM-SHA-256
//!           --logins N --concurrency C --server-pid PID
//!           [--secret S --seed B32] [--password PW --users U] [--scram-cache yes|no]
//!           [--keep-going yes|no] [--after-bind close|drop|hold] [--seconds S]
//!
//! Every mode cycles through the users user0..user{U-1}. PLAIN, X-TOKEN and SASL-HMAC mint a fresh
//! token when the login starts (as the web app would, so runs longer than a token's lifetime work)
//! with the given secret and seed; minting is about a microsecond, on the generator's own CPU.
//! PLAIN-PASSWORD logs in with a fixed password (internal_plain, internal_hashed).
//! A refused or failed login ends the run (exit 1) unless `--keep-going yes`: then refusals are
//! counted by reason, errors by kind, and the run goes on, as a storm's clients would. `--seconds S` stops starting logins after
//! S seconds (or N logins, whichever comes first): a sustained storm of a given length.
//! SCRAM-SHA-1 and SCRAM-SHA-256 log in with the same password the way converse.js does against
//! internal_hashed (no channel binding: there is no TLS), and check the server's signature. The
//! client's PBKDF2 of each user's salt is kept for the next logins unless `--scram-cache no`: the
//! server's cost is the same either way, and the generator's own PBKDF2 stays out of the latencies.

mod scram;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use prosody_auth_hmac::random::random_bytes;
use prosody_auth_hmac::sasl::sasl_hmac_proof;
use prosody_auth_hmac::verifier::Settings;
use prosody_auth_hmac::{SecretBytes, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
struct Args {
    port: u16,
    host: String,
    mech: String,
    logins: usize,
    concurrency: usize,
    server_pid: u32,
    secret: String,
    seed: String,
    password: String,
    users: usize,
    scram_cache: bool,
    keep_going: bool,
    after_bind: AfterBind,
    seconds: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterBind {
    Close,
    Drop,
    Hold,
}

fn parse_args() -> Args {
    let mut a = Args {
        port: 5222,
        host: "example.test".into(),
        mech: "PLAIN".into(),
        logins: 2000,
        concurrency: 8,
        server_pid: 0,
        secret: String::new(),
        seed: String::new(),
        password: "benchmark-password".into(),
        users: 100,
        scram_cache: true,
        keep_going: false,
        after_bind: AfterBind::Close,
        seconds: None,
    };
    let yes_no = |flag: &str, v: &str| match v {
        "yes" => true,
        "no" => false,
        _ => panic!("{flag} yes|no"),
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv[1..].chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--port" => a.port = v.parse().expect("port"),
            "--host" => a.host = v,
            "--mech" => a.mech = v,
            "--logins" => a.logins = v.parse().expect("logins"),
            "--concurrency" => a.concurrency = v.parse().expect("concurrency"),
            "--server-pid" => a.server_pid = v.parse().expect("pid"),
            "--secret" => a.secret = v,
            "--seed" => a.seed = v,
            "--password" => a.password = v,
            "--users" => a.users = v.parse().expect("users"),
            "--scram-cache" => a.scram_cache = yes_no("--scram-cache", &v),
            "--keep-going" => a.keep_going = yes_no("--keep-going", &v),
            "--after-bind" => {
                a.after_bind = match v.as_str() {
                    "close" => AfterBind::Close,
                    "drop" => AfterBind::Drop,
                    "hold" => AfterBind::Hold,
                    _ => panic!("--after-bind close|drop|hold"),
                }
            }
            "--seconds" => a.seconds = Some(v.parse().expect("seconds")),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the ")" of the command name: state is field 3; utime 14, stime 15
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15)
}

fn ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on
    100.0
}

/// What the concurrent logins share (one thread: cells, no locks).
struct State {
    next: Cell<usize>,
    salted: RefCell<scram::SaltedPasswords>,
    /// per login: (ms from its start to bound, seconds from the run's start to bound)
    bound: RefCell<Vec<(f64, f64)>>,
    refused: RefCell<BTreeMap<String, usize>>,
    errors: RefCell<BTreeMap<String, usize>>,
    /// seconds from the run's start at which each refusal or error came
    failed_at: RefCell<Vec<f64>>,
    held: RefCell<Vec<TcpStream>>,
}

enum Credential {
    Token { user: String, token: String },
    Password { user: String, password: String },
}

async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, needles: &[&[u8]]) -> std::io::Result<usize> {
    loop {
        for (i, n) in needles.iter().enumerate() {
            if buf.windows(n.len()).any(|w| w == *n) {
                return Ok(i);
            }
        }
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..read]);
    }
}

fn between<'a>(buf: &'a [u8], open: &[u8], close: &[u8]) -> Option<&'a [u8]> {
    let start = buf.windows(open.len()).position(|w| w == open)? + open.len();
    let gt = buf[start..].iter().position(|&b| b == b'>')? + start + 1;
    let end = buf[gt..].windows(close.len()).position(|w| w == close)? + gt;
    Some(&buf[gt..end])
}

fn is_password_mech(mech: &str) -> bool {
    mech == "PLAIN-PASSWORD" || scram::ScramHash::from_mechanism(mech).is_some()
}

/// How a login ended that the server answered: bound (with its stream), or refused with a SASL
/// condition and text.
enum Outcome {
    Bound(TcpStream),
    Refused(String),
}

/// No answer within this long is an error (a lost reply must not stall a run).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// `<failure xmlns=...><condition/><text ...>text</text></failure>` as "condition: text".
fn refusal(buf: &[u8]) -> String {
    let s = String::from_utf8_lossy(buf);
    let Some(rest) = s.split_once("<failure").map(|(_, r)| r) else { return "no <failure/>".into() };
    let rest = rest.split_once('>').map(|(_, r)| r).unwrap_or("").trim_start();
    let condition: String = rest.trim_start_matches('<').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    let text = rest.split_once("<text").and_then(|(_, t)| t.split_once('>')).and_then(|(_, t)| t.split_once("</text>"));
    match text {
        Some((t, _)) => format!("{condition}: {t}"),
        None => condition,
    }
}

async fn login(a: &Args, cred: &Credential, salted: &RefCell<scram::SaltedPasswords>) -> Result<Outcome, String> {
    let (port, host, mech) = (a.port, a.host.as_str(), a.mech.as_str());
    let b64 = |d: &[u8]| data_encoding::BASE64.encode(d);
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    s.set_nodelay(true).ok();
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='{host}' version='1.0'>"
    );
    let mut buf = Vec::new();
    let e = |x: std::io::Error| x.to_string();
    s.write_all(header.as_bytes()).await.map_err(e)?;
    read_until(&mut s, &mut buf, &[b"</stream:features>"]).await.map_err(e)?;
    buf.clear();
    let sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
    let (user, ok) = match (mech, cred) {
        ("PLAIN" | "X-TOKEN", Credential::Token { user, token }) => {
            let msg = [b"\0".as_slice(), user.as_bytes(), b"\0", token.as_bytes()].concat();
            s.write_all(format!("<auth xmlns='{sasl}' mechanism='{mech}'>{}</auth>", b64(&msg)).as_bytes()).await.map_err(e)?;
            (user, read_until(&mut s, &mut buf, &[b"<success", b"</failure>"]).await.map_err(e)? == 0)
        }
        ("PLAIN-PASSWORD", Credential::Password { user, password }) => {
            let msg = [b"\0".as_slice(), user.as_bytes(), b"\0", password.as_bytes()].concat();
            s.write_all(format!("<auth xmlns='{sasl}' mechanism='PLAIN'>{}</auth>", b64(&msg)).as_bytes()).await.map_err(e)?;
            (user, read_until(&mut s, &mut buf, &[b"<success", b"</failure>"]).await.map_err(e)? == 0)
        }
        ("SASL-HMAC", Credential::Token { user, token }) => {
            let (public, mac) = token.split_once(' ').ok_or("token")?;
            let secret_half = data_encoding::BASE64.decode(mac.as_bytes()).map_err(|x| x.to_string())?;
            let cfm = [b"\0".as_slice(), user.as_bytes(), b"\0", public.as_bytes()].concat();
            s.write_all(format!("<auth xmlns='{sasl}' mechanism='SASL-HMAC'>{}</auth>", b64(&cfm)).as_bytes())
                .await
                .map_err(e)?;
            if read_until(&mut s, &mut buf, &[b"</challenge>", b"</failure>"]).await.map_err(e)? != 0 {
                return Ok(Outcome::Refused(refusal(&buf)));
            }
            let sn = data_encoding::BASE64
                .decode(between(&buf, b"<challenge", b"</challenge>").ok_or("challenge")?)
                .map_err(|x| x.to_string())?;
            buf.clear();
            let proof = sasl_hmac_proof(&secret_half, true, &cfm, &sn);
            s.write_all(format!("<response xmlns='{sasl}'>{}</response>", b64(&proof)).as_bytes()).await.map_err(e)?;
            let ok = read_until(&mut s, &mut buf, &[b"</success>", b"</failure>"]).await.map_err(e)? == 0;
            if ok {
                let got = between(&buf, b"<success", b"</success>").ok_or("success data")?;
                let want = b64(&sasl_hmac_proof(&secret_half, false, &cfm, &sn));
                if got != want.as_bytes() {
                    return Err("server proof wrong".into());
                }
            }
            (user, ok)
        }
        ("SCRAM-SHA-1" | "SCRAM-SHA-256", Credential::Password { user, password }) => {
            let hash = scram::ScramHash::from_mechanism(mech).expect("a SCRAM mechanism");
            let nonce = b64(&random_bytes(18).map_err(|x| x.to_string())?);
            let client = scram::ScramClient::new(hash, user, password, &nonce)?;
            s.write_all(
                format!("<auth xmlns='{sasl}' mechanism='{mech}'>{}</auth>", b64(client.first_message().as_bytes())).as_bytes(),
            )
            .await
            .map_err(e)?;
            if read_until(&mut s, &mut buf, &[b"</challenge>", b"</failure>"]).await.map_err(e)? != 0 {
                return Ok(Outcome::Refused(refusal(&buf)));
            }
            let server_first = data_encoding::BASE64
                .decode(between(&buf, b"<challenge", b"</challenge>").ok_or("challenge")?)
                .map_err(|x| x.to_string())?;
            let server_first = String::from_utf8(server_first).map_err(|_| "server-first-message is not UTF-8")?;
            buf.clear();
            let fin = client.final_message(&server_first, &mut salted.borrow_mut(), a.scram_cache)?;
            s.write_all(format!("<response xmlns='{sasl}'>{}</response>", b64(fin.message.as_bytes())).as_bytes())
                .await
                .map_err(e)?;
            let ok = read_until(&mut s, &mut buf, &[b"</success>", b"</failure>"]).await.map_err(e)? == 0;
            if ok {
                let got = data_encoding::BASE64
                    .decode(between(&buf, b"<success", b"</success>").ok_or("success data")?)
                    .map_err(|x| x.to_string())?;
                fin.verify_server(&String::from_utf8_lossy(&got))?;
            }
            (user, ok)
        }
        _ => return Err(format!("mechanism {mech} does not go with this credential")),
    };
    if !ok {
        let _ = user;
        return Ok(Outcome::Refused(refusal(&buf)));
    }
    buf.clear();
    s.write_all(header.as_bytes()).await.map_err(e)?;
    read_until(&mut s, &mut buf, &[b"</stream:features>"]).await.map_err(e)?;
    buf.clear();
    s.write_all(b"<iq type='set' id='b' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .map_err(e)?;
    read_until(&mut s, &mut buf, &[b"</iq>"]).await.map_err(e)?;
    if !buf.windows(13).any(|w| w == b"type='result'") && !buf.windows(13).any(|w| w == b"type=\"result\"") {
        return Err(format!("bind failed: {}", String::from_utf8_lossy(&buf)));
    }
    Ok(Outcome::Bound(s))
}

/// Ends a session: stream close, and the server's close awaited (briefly).
async fn close(mut s: TcpStream) {
    let mut buf = Vec::new();
    if s.write_all(b"</stream:stream>").await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), read_until(&mut s, &mut buf, &[b"</stream:stream>"])).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    // Tokens are minted when their login starts, with the clock of that moment, as a web app mints
    // them when a page asks: a run may last longer than a token's lifetime.
    let verifier = (!is_password_mech(&a.mech)).then(|| {
        let seed = prosody_auth_hmac::totp::decode_seed(&a.seed).expect("seed");
        Verifier::new(vec![SecretBytes::from_config_str(&a.secret)], seed, Settings::default(), None).expect("keys")
    });
    let (users, password, host) = (a.users, a.password.clone(), a.host.clone());
    let credential = move |i: usize| {
        let user = format!("user{}", i % users);
        match &verifier {
            None => Credential::Password { user, password: password.clone() },
            Some(v) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                Credential::Token { token: v.mint(&format!("{user}@{host}"), now).expect("mint"), user }
            }
        }
    };
    let state = Rc::new(State {
        next: Cell::new(0),
        salted: RefCell::new(scram::SaltedPasswords::default()),
        bound: RefCell::new(Vec::with_capacity(a.logins.min(1 << 20))),
        refused: RefCell::default(),
        errors: RefCell::default(),
        failed_at: RefCell::default(),
        held: RefCell::default(),
    });
    let a = Rc::new(a);
    let credential = Rc::new(credential);
    let cpu0 = cpu_ticks(a.server_pid);
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut workers = Vec::new();
            for _ in 0..a.concurrency {
                let (a, state, credential) = (a.clone(), state.clone(), credential.clone());
                workers.push(tokio::task::spawn_local(async move {
                    loop {
                        let i = state.next.get();
                        if i >= a.logins || a.seconds.is_some_and(|s| t0.elapsed().as_secs_f64() >= s) {
                            break;
                        }
                        state.next.set(i + 1);
                        let cred = credential(i);
                        let t = Instant::now();
                        let outcome = match tokio::time::timeout(LOGIN_TIMEOUT, login(&a, &cred, &state.salted)).await {
                            Ok(outcome) => outcome,
                            Err(_) => Err(format!("no answer within {} s", LOGIN_TIMEOUT.as_secs())),
                        };
                        match outcome {
                            Ok(Outcome::Bound(stream)) => {
                                state.bound.borrow_mut().push((t.elapsed().as_secs_f64() * 1000.0, t0.elapsed().as_secs_f64()));
                                match a.after_bind {
                                    AfterBind::Hold => state.held.borrow_mut().push(stream),
                                    AfterBind::Drop => drop(stream),
                                    AfterBind::Close => close(stream).await,
                                }
                            }
                            Ok(Outcome::Refused(reason)) if a.keep_going => {
                                *state.refused.borrow_mut().entry(reason).or_insert(0) += 1;
                                state.failed_at.borrow_mut().push(t0.elapsed().as_secs_f64());
                            }
                            Err(err) if a.keep_going => {
                                *state.errors.borrow_mut().entry(err).or_insert(0) += 1;
                                state.failed_at.borrow_mut().push(t0.elapsed().as_secs_f64());
                            }
                            Ok(Outcome::Refused(reason)) => {
                                eprintln!("login {i} refused: {reason}");
                                std::process::exit(1);
                            }
                            Err(err) => {
                                eprintln!("login {i} failed: {err}");
                                std::process::exit(1);
                            }
                        }
                    }
                }));
            }
            for w in workers {
                w.await.expect("worker");
            }
        })
        .await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(a.server_pid) - cpu0) as f64 / ticks_per_second();
    // held sessions are closed after the clock stops: they stood for the storm's open pages
    let held = state.held.take();
    let held_count = held.len();
    local
        .run_until(async {
            let closing: Vec<_> = held.into_iter().map(|s| tokio::task::spawn_local(close(s))).collect();
            for c in closing {
                let _ = c.await;
            }
        })
        .await;
    let bound = state.bound.take();
    let mut lat: Vec<f64> = bound.iter().map(|b| b.0).collect();
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let all_bound = bound.iter().map(|b| b.1).fold(0.0, f64::max);
    let mut per_second = vec![0usize; wall.ceil() as usize];
    for b in &bound {
        if let Some(n) = per_second.get_mut(b.1 as usize) {
            *n += 1;
        }
    }
    let mut refused_per_second = vec![0usize; wall.ceil() as usize];
    for t in state.failed_at.take() {
        if let Some(n) = refused_per_second.get_mut(t as usize) {
            *n += 1;
        }
    }
    let pct = |p: f64| if lat.is_empty() { 0.0 } else { percentile(&lat, p) };
    let refused_total: usize = state.refused.borrow().values().sum::<usize>() + state.errors.borrow().values().sum::<usize>();
    let refusals: Vec<String> = state.refused.take().iter().map(|(k, v)| format!("{}:{v}", json_string(k))).collect();
    let errors: Vec<String> = state.errors.take().iter().map(|(k, v)| format!("{}:{v}", json_string(k))).collect();
    let timeline: Vec<String> = per_second.iter().map(|n| n.to_string()).collect();
    let refused_timeline: Vec<String> = refused_per_second.iter().map(|n| n.to_string()).collect();
    println!(
        "{{\"mech\":\"{}\",\"logins\":{},\"attempts\":{},\"concurrency\":{},\"held\":{},\"seconds\":{:.3},\"all_bound_s\":{:.3},\"logins_per_s\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"server_cpu_s\":{:.3},\"server_cpu_ms_per_login\":{:.4},\"refusals\":{{{}}},\"errors\":{{{}}},\"bound_per_second\":[{}],\"refused_per_second\":[{}]}}",
        a.mech,
        lat.len(),
        lat.len() + refused_total,
        a.concurrency,
        held_count,
        wall,
        all_bound,
        lat.len() as f64 / wall,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0),
        cpu,
        cpu * 1000.0 / (lat.len().max(1)) as f64,
        refusals.join(","),
        errors.join(","),
        timeline.join(","),
        refused_timeline.join(",")
    );
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_its_condition_and_text() {
        let f = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/><text xml:lang='en'>Please try again later.</text></failure>";
        assert_eq!(refusal(f), "temporary-auth-failure: Please try again later.");
        let f = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
        assert_eq!(refusal(f), "not-authorized");
        assert_eq!(refusal(b"<stream:error/>"), "no <failure/>");
    }
}
