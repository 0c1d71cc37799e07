//! Appliance accounts: password hashing (argon2), HTTP Basic authentication for the API, and the
//! one login throttle that the API and the UI's login form share.
//!
//! Verifying an argon2 hash costs tens of milliseconds and 19 MiB by design, which makes every
//! login attempt a lever for a hostile client. So, in this order:
//! - **Throttle before hashing.** Failed attempts are counted per (account, client address) and per
//!   client address, and an attempt is counted *before* its hash is verified: a burst of wrong
//!   passwords costs at most [`Options::max_failed_logins`] hashes, the rest get `429` at once.
//!   Counting per (account, address) rather than per account keeps a stranger from locking the
//!   real administrator out.
//! - **Bounded hashing.** At most [`hash_threads`] verifications run at once, each waiting at most
//!   [`HASH_WAIT`] for its turn (`503` after that): memory stays bounded however many clients come.
//! - **One hash per credential in flight.** Concurrent requests with the same name and password
//!   share one verification (a script's burst of parallel requests costs one hash).
//! - **Constant work for unknown accounts.** A name that does not exist is checked against a dummy
//!   hash with the same parameters, so response times do not tell which accounts exist.
//! - **Remembered logins are re-checked.** A verified login is remembered for [`CACHE_TTL`], keyed by
//!   a SHA-256 of the credentials, but every use looks the account up again: a deleted account, a
//!   changed password or a new role takes effect at the next request, from any process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rampart_store::Role;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::{ApiError, AppState};

/// How long a verified login is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// The shortest passphrase accepted for an account.
pub const MIN_PASSWORD: usize = 8;

/// Password verifications that may run at once (argon2 takes 19 MiB and a core for ~10 ms
/// each): half the cores, at least one and at most four, so a storm of logins always leaves
/// CPU for the mail.
pub fn hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 4)
}

/// How long an attempt waits for a verification slot before it is answered `503`.
pub const HASH_WAIT: Duration = Duration::from_secs(1);

/// Failed attempts from one client address, over all accounts, allowed per lockout period, as a
/// multiple of the per-account limit: enough for an administrator who mistypes a few names, too
/// few to spray passwords over many accounts.
const PER_ADDRESS_FACTOR: u32 = 4;

/// Account names: what a login form and a Basic header carry unambiguously.
pub fn valid_username(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why an account could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username {0:?}: use 1-32 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    #[error("the passphrase must have at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("a passphrase is required for a new account")]
    MissingPassword,
    #[error("{0}")]
    Internal(String),
    /// Cluster mode: the cluster database cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

impl From<rampart_store::StoreError> for AccountError {
    fn from(e: rampart_store::StoreError) -> AccountError {
        match e {
            rampart_store::StoreError::Unavailable(_) => AccountError::Unavailable(e.to_string()),
            e => AccountError::Internal(e.to_string()),
        }
    }
}

/// Creates or changes an account — the one way the UI, the API and the CLI do it: a new
/// passphrase is hashed and ends the account's sessions; `password: None` keeps the current one.
/// The change is recorded in the audit log as made by `by` through `source`.
pub async fn save_account(
    store: &rampart_store::Store,
    name: &str,
    password: Option<&str>,
    role: Role,
    by: &str,
    source: &str,
) -> Result<(), AccountError> {
    if !valid_username(name) {
        return Err(AccountError::InvalidName(name.to_owned()));
    }
    let password_hash = match (password, store.user(name).await?) {
        (Some(p), _) if p.len() < MIN_PASSWORD => return Err(AccountError::ShortPassword),
        (Some(p), _) => {
            let p = p.to_owned();
            tokio::task::spawn_blocking(move || hash_password(&p))
                .await
                .map_err(|e| AccountError::Internal(e.to_string()))?
                .map_err(AccountError::Internal)?
        }
        (None, Some(existing)) => existing.password_hash,
        (None, None) => return Err(AccountError::MissingPassword),
    };
    store
        .put_user(&rampart_store::User {
            name: name.to_owned(),
            password_hash,
            role,
        })
        .await?;
    if password.is_some() {
        store.delete_sessions_of(name).await?;
    }
    let change = format!("Users: saved account {name} with role {}", role.as_str());
    store
        .audit(&rampart_store::Audit::new(by, source, change))
        .await?;
    Ok(())
}

/// Hashes a password into an argon2 PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The most argon2 memory a stored hash may ask for (256 MiB): a hash with more is refused
/// rather than allocated.
const MAX_BLOCKS: usize = 256 * 1024;

/// [`verify_password`] with the caller's argon2 memory (`blocks`, grown as needed and kept).
fn verify_with(password: &str, hash: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        argon2::Params::try_from(&parsed),
        argon2::Algorithm::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let need = params.block_count();
    if need > MAX_BLOCKS {
        return false;
    }
    if blocks.len() < need {
        blocks.resize(need, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks.as_mut_slice())
        .is_err()
    {
        return false;
    }
    // Compared in time independent of where they differ.
    out.iter()
        .zip(expected.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// What a name that is not an account is verified against: a hash with the default parameters,
/// so that an unknown name costs what a known one does.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password("rampart-no-such-account").unwrap_or_else(|_| {
        // Hashing a constant with a fresh salt cannot fail; should it ever, any PHC string with
        // the default parameters still does the same work.
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_owned()
    })
});

/// Computes the dummy hash ahead of the first login.
pub(crate) fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong name or password.
    Invalid,
    /// Too many failed attempts from this client; try again in this many seconds.
    Locked(u64),
    /// Every verification slot is busy; try again shortly.
    Busy,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Invalid => ApiError::unauthorized(),
            Refusal::Locked(secs) => ApiError::too_many_requests(
                format!("too many failed logins from this address; try again in {secs} seconds"),
                secs,
            ),
            Refusal::Busy => ApiError::busy(
                "too many logins are being checked at once; try again in a second".to_owned(),
            ),
        }
    }
}

/// Login limits; from the `[web]` section of the bootstrap configuration.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Failed logins per (account, client address) before that pair is refused.
    pub max_failed_logins: u32,
    /// How long a refused pair stays refused.
    pub lockout: Duration,
}

/// One verification, shared by the concurrent requests that carry the same credentials.
type Verification = OnceCell<Result<Caller, Refusal>>;

/// Login state shared by the API and the UI: the throttle, the verification slots, the logins in
/// flight and the remembered ones.
#[derive(Debug)]
pub(crate) struct Guard {
    options: Options,
    failures: std::sync::Mutex<HashMap<String, (u32, Instant)>>,
    hashing: Semaphore,
    verifier: Verifier,
    in_flight: std::sync::Mutex<HashMap<[u8; 32], Arc<Verification>>>,
    /// Remembered logins: the caller and the password hash they were verified against.
    cache: Mutex<HashMap<[u8; 32], (String, String, Instant)>>,
}

impl Guard {
    pub(crate) fn new(options: Options) -> Guard {
        Guard {
            options,
            failures: std::sync::Mutex::default(),
            hashing: Semaphore::new(hash_threads()),
            verifier: Verifier::new(hash_threads()),
            in_flight: std::sync::Mutex::default(),
            cache: Mutex::default(),
        }
    }

    fn keys(name: &str, client: Option<IpAddr>) -> [String; 2] {
        let ip = client.map_or_else(|| "unknown".to_owned(), |ip| canonical(ip).to_string());
        [
            format!("account:{}|ip:{ip}", name.to_ascii_lowercase()),
            format!("ip:{ip}"),
        ]
    }

    fn limits(&self) -> [u32; 2] {
        let max = self.options.max_failed_logins.max(1);
        [max, max.saturating_mul(PER_ADDRESS_FACTOR)]
    }

    /// Seconds until these keys may try again, if one of them is over its limit.
    fn locked(&self, keys: &[String; 2]) -> Option<u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        self.over_limit(&mut failures, keys)
    }

    fn over_limit(
        &self,
        failures: &mut HashMap<String, (u32, Instant)>,
        keys: &[String; 2],
    ) -> Option<u64> {
        let lockout = self.options.lockout;
        failures.retain(|_, (_, last)| last.elapsed() < lockout);
        keys.iter()
            .zip(self.limits())
            .filter_map(|(k, max)| failures.get(k).filter(|(n, _)| *n >= max))
            .map(|(_, last)| lockout.saturating_sub(last.elapsed()).as_secs() + 1)
            .max()
    }

    /// Admits an attempt to be checked, counting it as failed in the same step (so concurrent
    /// attempts cannot all pass the check before any is counted); [`Guard::settle`] takes the
    /// count back when it succeeds.
    fn admit(&self, keys: &[String; 2]) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = self.over_limit(&mut failures, keys) {
            return Err(wait);
        }
        for k in keys {
            let e = failures.entry(k.clone()).or_insert((0, Instant::now()));
            e.0 = e.0.saturating_add(1);
            e.1 = Instant::now();
        }
        Ok(())
    }

    /// A successful login clears its (account, address) count and takes back its own count from
    /// the address (so a valid login cannot reset the count of guesses at other accounts); an
    /// attempt that was never checked (no slot free) is taken back from both.
    fn settle(&self, keys: &[String; 2], outcome: &Result<Caller, Refusal>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let [pair, address] = keys;
        match outcome {
            Ok(_) => {
                failures.remove(pair);
                uncount(&mut failures, address);
            }
            Err(Refusal::Busy) => {
                uncount(&mut failures, pair);
                uncount(&mut failures, address);
            }
            Err(_) => {}
        }
    }
}

/// The threads that check passwords: always the same few, each with its own argon2 memory,
/// allocated once and reused. Run on tokio's blocking pool (up to 512 threads), a storm of
/// logins left 19 MiB in each of hundreds of allocator arenas (424 MB measured, with two checks
/// at once); a fresh allocation per check on two threads still fragmented to 215 MB.
#[derive(Debug)]
struct Verifier {
    jobs: std::sync::mpsc::Sender<VerifyJob>,
}

/// A password, the hash to check it against, and where the answer goes.
type VerifyJob = (String, String, tokio::sync::oneshot::Sender<bool>);

impl Verifier {
    fn new(threads: usize) -> Verifier {
        let (jobs, rx) = std::sync::mpsc::channel::<VerifyJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // The thread's own argon2 memory, reused for every check.
                    let mut blocks = Vec::new();
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        // The sender is gone with the appliance's web state: stop.
                        let Ok((password, hash, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(verify_with(&password, &hash, &mut blocks));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password verification thread");
            }
        }
        Verifier { jobs }
    }

    /// Checks a password on one of the threads; false if none could be started.
    async fn verify(&self, password: String, hash: String) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.jobs.send((password, hash, tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn uncount(failures: &mut HashMap<String, (u32, Instant)>, key: &str) {
    if let Some(e) = failures.get_mut(key) {
        e.0 = e.0.saturating_sub(1);
        if e.0 == 0 {
            failures.remove(key);
        }
    }
}

/// An IPv4-mapped IPv6 address counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An authenticated API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Refuses read-only callers: operators release quarantined mail and retry delivery.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.role.at_least(Role::Operator) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' is read-only; this needs the operator or admin role",
                self.name
            )))
        }
    }

    /// Refuses callers that may not change configuration.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role.at_least(Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' has role {}; changing configuration needs the admin role",
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
            .ok_or_else(ApiError::unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ApiError::unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let (name, password) = decoded.split_once(':').ok_or_else(ApiError::unauthorized)?;
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::ClientAddr>>()
            .map(|c| c.0.0.ip());
        Ok(authenticate(state, name, password, client).await?)
    }
}

/// Checks a name and password from `client` against the accounts: the throttle first, then the
/// remembered logins, then one bounded argon2 verification.
pub async fn authenticate(
    state: &AppState,
    name: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<Caller, Refusal> {
    let guard = &state.auth;
    let keys = Guard::keys(name, client);
    if let Some(wait) = guard.locked(&keys) {
        tracing::warn!(
            user = name,
            ?client,
            "login refused: too many failed attempts"
        );
        return Err(Refusal::Locked(wait));
    }
    let key: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0u8])
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    if let Some(caller) = remembered(state, &key).await {
        return Ok(caller);
    }
    let (cell, _entry) = InFlight::join(guard, key);
    let outcome = cell
        .get_or_init(|| async {
            if let Err(wait) = guard.admit(&keys) {
                return Err(Refusal::Locked(wait));
            }
            let outcome = verify(state, name, password, &key).await;
            guard.settle(&keys, &outcome);
            outcome
        })
        .await
        .clone();
    if outcome.is_err() {
        tracing::warn!(user = name, ?client, "login failed");
    }
    outcome
}

/// Checks `password` against `hash` in a bounded slot on the verification threads: the one way
/// the web side runs argon2 (logins, and the current passphrase when one is changed).
pub(crate) async fn check_password(
    state: &AppState,
    password: &str,
    hash: &str,
) -> Result<bool, Refusal> {
    let Ok(Ok(_permit)) = tokio::time::timeout(HASH_WAIT, state.auth.hashing.acquire()).await
    else {
        return Err(Refusal::Busy);
    };
    Ok(state
        .auth
        .verifier
        .verify(password.to_owned(), hash.to_owned())
        .await)
}

/// A request's share of a verification in flight; the map entry goes when the request ends, also
/// when its client goes away mid-check (else abandoned requests would pile up entries).
struct InFlight<'a> {
    guard: &'a Guard,
    key: [u8; 32],
}

impl<'a> InFlight<'a> {
    fn join(guard: &'a Guard, key: [u8; 32]) -> (Arc<Verification>, InFlight<'a>) {
        let mut in_flight = guard.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let cell = in_flight.entry(key).or_default().clone();
        (cell, InFlight { guard, key })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .guard
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        in_flight.remove(&self.key);
    }
}

/// A remembered login, if its account still has the password it was verified against; the role
/// is the account's current one.
async fn remembered(state: &AppState, key: &[u8; 32]) -> Option<Caller> {
    let (name, hash) = {
        let mut cache = state.auth.cache.lock().await;
        match cache.get(key) {
            Some((_, _, at)) if at.elapsed() >= CACHE_TTL => {
                cache.remove(key);
                return None;
            }
            Some((name, hash, _)) => (name.clone(), hash.clone()),
            None => return None,
        }
    };
    match state.store.user(&name).await {
        Ok(Some(user)) if user.password_hash == hash => Some(Caller {
            name: user.name,
            role: user.role,
        }),
        _ => {
            state.auth.cache.lock().await.remove(key);
            None
        }
    }
}

/// One argon2 verification in a bounded slot, against the account's hash or the dummy one.
async fn verify(
    state: &AppState,
    name: &str,
    password: &str,
    key: &[u8; 32],
) -> Result<Caller, Refusal> {
    let user = state.store.user(name).await.ok().flatten();
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let ok = check_password(state, password, &hash)
        .await
        .inspect_err(|_| {
            tracing::warn!(
                user = name,
                "login not checked: every verification slot is busy"
            );
        })?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(Refusal::Invalid);
    };
    let mut cache = state.auth.cache.lock().await;
    cache.retain(|_, (_, _, at)| at.elapsed() < CACHE_TTL);
    cache.insert(*key, (user.name.clone(), hash, Instant::now()));
    Ok(Caller {
        name: user.name,
        role: user.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn verification_with_reused_memory_agrees_with_the_library() {
        let mut blocks = Vec::new();
        let default = hash_password("s3cret-pass").unwrap();
        let cheap = {
            let params = argon2::Params::new(8, 1, 1, None).unwrap();
            let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon
                .hash_password(b"s3cret-pass", &salt)
                .unwrap()
                .to_string()
        };
        for hash in [&default, &cheap, &default] {
            for pw in ["s3cret-pass", "s3cret-pasS", ""] {
                assert_eq!(
                    verify_with(pw, hash, &mut blocks),
                    verify_password(pw, hash),
                    "{pw:?} against {hash}"
                );
            }
        }
        assert!(verify_with("s3cret-pass", &default, &mut blocks));
        assert!(!verify_with("x", "not a hash", &mut blocks));
        let huge = default.replace("m=19456", "m=4000000");
        assert!(
            !verify_with("s3cret-pass", &huge, &mut blocks),
            "too much memory asked"
        );
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password("anything").unwrap();
        let params = |h: &str| h.split('$').nth(3).unwrap_or_default().to_owned();
        assert_eq!(params(&DUMMY_HASH), params(&real));
        assert!(!verify_password("rampart-no-such-accoun", &DUMMY_HASH));
    }

    fn guard() -> Guard {
        Guard::new(Options {
            max_failed_logins: 3,
            lockout: Duration::from_secs(60),
        })
    }

    #[test]
    fn attempts_count_per_account_and_address() {
        let g = guard();
        let a = Guard::keys("Admin", Some("192.0.2.1".parse().unwrap()));
        let b = Guard::keys("admin", Some("192.0.2.2".parse().unwrap()));
        for _ in 0..3 {
            assert_eq!(g.admit(&a), Ok(()));
        }
        assert!(g.locked(&a).is_some(), "the pair is locked");
        assert!(g.admit(&a).is_err());
        assert_eq!(g.locked(&b), None, "the account from elsewhere is not");
        let other = Guard::keys("oper", Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            g.locked(&other),
            None,
            "another account from the address is not"
        );
        for _ in 0..2 {
            g.admit(&other).unwrap();
        }
        for name in ["x", "y", "z", "w", "v"] {
            for _ in 0..2 {
                let _ = g.admit(&Guard::keys(name, Some("192.0.2.1".parse().unwrap())));
            }
        }
        let third = Guard::keys("third", Some("::ffff:192.0.2.1".parse().unwrap()));
        assert!(
            g.locked(&third).is_some(),
            "the address is over its own limit"
        );
    }

    #[test]
    fn requests_with_the_same_credentials_share_one_check_and_leave_nothing_behind() {
        let g = guard();
        let (a, entry_a) = InFlight::join(&g, [1; 32]);
        let (b, entry_b) = InFlight::join(&g, [1; 32]);
        assert!(Arc::ptr_eq(&a, &b));
        let (c, entry_c) = InFlight::join(&g, [2; 32]);
        assert!(!Arc::ptr_eq(&a, &c));
        // A request that ends (or whose client went away) takes its entry with it.
        drop((entry_a, entry_b, entry_c));
        assert!(g.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn a_success_clears_its_pair_but_not_the_address() {
        let g = guard();
        let a = Guard::keys("admin", Some("192.0.2.1".parse().unwrap()));
        g.admit(&a).unwrap();
        g.admit(&a).unwrap();
        let ok = Ok(Caller {
            name: "admin".into(),
            role: Role::Admin,
        });
        g.admit(&a).unwrap();
        g.settle(&a, &ok);
        let failures = g.failures.lock().unwrap();
        assert_eq!(failures.get(&a[0]), None);
        assert_eq!(failures.get(&a[1]).map(|e| e.0), Some(2));
    }
}
