//! Login load generator: each login is a fresh TCP connection to Prosody's c2s port (no TLS: the
//! benchmark measures authentication, so TLS is off and unencrypted auth allowed for it), stream
//! open, SASL, stream restart, resource bind, stream close. A fixed number of logins run
//! concurrently. Prints logins/s, latency percentiles and the server's CPU per login, read from
//! /proc/<pid>/stat before and after.
//!
//!   loadgen --port P --host example.test
//!           --mech PLAIN|X-TOKEN|SASL-HMAC|PLAIN-PASSWORD|SCRAM-SHA-1|SCRAM-SHA-256
//!           --logins N --concurrency C --server-pid PID
//!           [--secret S --seed B32] [--password PW --users U] [--scram-cache yes|no]
//!
//! Every mode cycles through the users user0..user{U-1}. PLAIN, X-TOKEN and SASL-HMAC mint a fresh
//! token per login (as the web app would) with the given secret and seed; PLAIN-PASSWORD logs in
//! with a fixed password (internal_plain, internal_hashed). Minting is done before the clock starts.
//! SCRAM-SHA-1 and SCRAM-SHA-256 log in with the same password the way converse.js does against
//! internal_hashed (no channel binding: there is no TLS), and check the server's signature. The
//! client's PBKDF2 of each user's salt is kept for the next logins unless `--scram-cache no`: the
//! server's cost is the same either way, and the generator's own PBKDF2 stays out of the latencies.

mod scram;

use std::cell::RefCell;
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
            "--scram-cache" => {
                a.scram_cache = match v.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => panic!("--scram-cache yes|no"),
                }
            }
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

async fn login(a: &Args, cred: &Credential, salted: &RefCell<scram::SaltedPasswords>) -> Result<(), String> {
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
            (user, read_until(&mut s, &mut buf, &[b"<success", b"<failure"]).await.map_err(e)? == 0)
        }
        ("PLAIN-PASSWORD", Credential::Password { user, password }) => {
            let msg = [b"\0".as_slice(), user.as_bytes(), b"\0", password.as_bytes()].concat();
            s.write_all(format!("<auth xmlns='{sasl}' mechanism='PLAIN'>{}</auth>", b64(&msg)).as_bytes()).await.map_err(e)?;
            (user, read_until(&mut s, &mut buf, &[b"<success", b"<failure"]).await.map_err(e)? == 0)
        }
        ("SASL-HMAC", Credential::Token { user, token }) => {
            let (public, mac) = token.split_once(' ').ok_or("token")?;
            let secret_half = data_encoding::BASE64.decode(mac.as_bytes()).map_err(|x| x.to_string())?;
            let cfm = [b"\0".as_slice(), user.as_bytes(), b"\0", public.as_bytes()].concat();
            s.write_all(format!("<auth xmlns='{sasl}' mechanism='SASL-HMAC'>{}</auth>", b64(&cfm)).as_bytes())
                .await
                .map_err(e)?;
            if read_until(&mut s, &mut buf, &[b"</challenge>", b"<failure"]).await.map_err(e)? != 0 {
                return Err("challenge refused".into());
            }
            let sn = data_encoding::BASE64
                .decode(between(&buf, b"<challenge", b"</challenge>").ok_or("challenge")?)
                .map_err(|x| x.to_string())?;
            buf.clear();
            let proof = sasl_hmac_proof(&secret_half, true, &cfm, &sn);
            s.write_all(format!("<response xmlns='{sasl}'>{}</response>", b64(&proof)).as_bytes()).await.map_err(e)?;
            let ok = read_until(&mut s, &mut buf, &[b"</success>", b"<failure"]).await.map_err(e)? == 0;
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
            if read_until(&mut s, &mut buf, &[b"</challenge>", b"<failure"]).await.map_err(e)? != 0 {
                return Err(format!("{mech} refused: {}", String::from_utf8_lossy(&buf)));
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
            let ok = read_until(&mut s, &mut buf, &[b"</success>", b"<failure"]).await.map_err(e)? == 0;
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
        return Err(format!("login refused for {user}: {}", String::from_utf8_lossy(&buf)));
    }
    buf.clear();
    s.write_all(header.as_bytes()).await.map_err(e)?;
    read_until(&mut s, &mut buf, &[b"</stream:features>"]).await.map_err(e)?;
    buf.clear();
    s.write_all(b"<iq type='set' id='b' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .map_err(e)?;
    read_until(&mut s, &mut buf, &[b"</iq>"]).await.map_err(e)?;
    s.write_all(b"</stream:stream>").await.map_err(e)?;
    let _ = tokio::time::timeout(Duration::from_secs(2), read_until(&mut s, &mut buf, &[b"</stream:stream>"])).await;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = parse_args();
    let creds: Vec<Credential> = if is_password_mech(&a.mech) {
        (0..a.logins)
            .map(|i| Credential::Password { user: format!("user{}", i % a.users), password: a.password.clone() })
            .collect()
    } else {
        let seed = prosody_auth_hmac::totp::decode_seed(&a.seed).expect("seed");
        let v = Verifier::new(vec![SecretBytes::from_config_str(&a.secret)], seed, Settings::default(), None).expect("keys");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        (0..a.logins)
            .map(|i| {
                let user = format!("user{}", i % a.users); // the same user pool as the password modes
                Credential::Token { token: v.mint(&format!("{user}@{}", a.host), now).unwrap(), user }
            })
            .collect()
    };
    let creds = std::sync::Arc::new(creds);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let salted = std::rc::Rc::new(RefCell::new(scram::SaltedPasswords::default()));
    let cpu0 = cpu_ticks(a.server_pid);
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    let latencies = local
        .run_until(async {
            let mut tasks = Vec::new();
            for _ in 0..a.concurrency {
                let (creds, next, a, salted) = (creds.clone(), next.clone(), a.clone(), salted.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= creds.len() {
                            break;
                        }
                        let t = Instant::now();
                        if let Err(err) = login(&a, &creds[i], &salted).await {
                            eprintln!("login {i} failed: {err}");
                            std::process::exit(1);
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
        .await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(a.server_pid) - cpu0) as f64 / ticks_per_second();
    let mut lat = latencies;
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "{{\"mech\":\"{}\",\"logins\":{},\"concurrency\":{},\"seconds\":{:.3},\"logins_per_s\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"server_cpu_s\":{:.3},\"server_cpu_ms_per_login\":{:.4}}}",
        a.mech,
        lat.len(),
        a.concurrency,
        wall,
        lat.len() as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        cpu,
        cpu * 1000.0 / lat.len() as f64
    );
}
