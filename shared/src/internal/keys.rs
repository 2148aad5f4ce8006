//! The keys assertions are made and checked with: one per caller and callee, derived from
//! `internal.secret`. A process holding the secret derives any pair it needs. With
//! `internal.keys` instead, a service holds only the keys of its own pairs, as `taskmesh keys
//! <service>` prints them: then it can make assertions only as itself, for the services it
//! calls, and none that another caller's key would make.

use std::collections::HashMap;

use base64::{engine::general_purpose::STANDARD, Engine};
use secrecy::{ExposeSecret, SecretString};

use crate::signing::MacKey;

/// The services that make or check assertions.
pub const SERVICES: &[&str] = &[
    "api-gateway",
    "user-svc",
    "task-svc",
    "notify-svc",
    "media-svc",
];

/// Who calls whom (caller, callee): every pair a deployment needs a key for.
pub const CALLS: &[(&str, &str)] = &[
    ("api-gateway", "user-svc"),
    ("api-gateway", "task-svc"),
    ("api-gateway", "notify-svc"),
    ("api-gateway", "media-svc"),
    ("media-svc", "task-svc"),
];

/// The key of assertions from `from` to `to`, derived from the deployment's secret.
pub fn derive(secret: &[u8], from: &str, to: &str) -> [u8; 32] {
    let label = format!("taskmesh assertions {from} > {to}");
    MacKey::new(secret.to_vec()).tag(&[label.as_bytes()])
}

/// What `taskmesh keys <service>` prints: the value of `internal.keys` for `service`, every
/// pair it calls or is called in.
pub fn render(secret: &SecretString, service: &str) -> String {
    let secret = secret.expose_secret().as_bytes();
    CALLS
        .iter()
        .filter(|(from, to)| *from == service || *to == service)
        .map(|(from, to)| format!("{from}>{to}:{}", STANDARD.encode(derive(secret, from, to))))
        .collect::<Vec<_>>()
        .join(",")
}

/// `internal.keys` (or `internal.accepted_keys`) is not what `taskmesh keys` prints for this
/// service.
#[derive(Debug, thiserror::Error)]
#[error("{setting} (TASKMESH_{env}) {problem}; `taskmesh keys {service}`, run where TASKMESH_INTERNAL__SECRET is set, prints the right value")]
pub struct KeysError {
    setting: &'static str,
    env: &'static str,
    service: String,
    problem: String,
}

/// One service's keys: what it signs for each callee with, and checks each caller's with.
#[derive(Default)]
pub struct Pairs {
    /// Callee → key.
    pub signing: HashMap<String, Vec<u8>>,
    /// Caller → key.
    pub checking: HashMap<String, Vec<u8>>,
}

impl Pairs {
    /// Reads `text` (`caller>callee:base64,…`) for `service`; with `complete`, every pair of
    /// [`CALLS`] that names `service` must be there.
    pub fn parse(service: &str, text: &SecretString, accepted: bool) -> Result<Self, KeysError> {
        let (setting, env) = match accepted {
            false => ("internal.keys", "INTERNAL__KEYS"),
            true => ("internal.accepted_keys", "INTERNAL__ACCEPTED_KEYS"),
        };
        let error = |problem: String| KeysError {
            setting,
            env,
            service: service.to_string(),
            problem,
        };
        let mut pairs = Pairs::default();
        for (n, entry) in text.expose_secret().split(',').map(str::trim).enumerate() {
            let entry_no = n + 1;
            let parsed = entry.split_once(':').and_then(|(pair, key)| {
                let (from, to) = pair.split_once('>')?;
                let key = STANDARD.decode(key).ok().filter(|k| k.len() == 32)?;
                Some((from.to_string(), to.to_string(), key))
            });
            let Some((from, to, key)) = parsed else {
                return Err(error(format!(
                    "entry {entry_no} is not `caller>callee:<32 bytes in base64>`"
                )));
            };
            if from == service {
                pairs.signing.insert(to, key);
            } else if to == service {
                pairs.checking.insert(from, key);
            } else {
                return Err(error(format!(
                    "entry {entry_no} ({from}>{to}) is another service's; give each service only its own"
                )));
            }
        }
        if !accepted {
            let missing: Vec<String> = CALLS
                .iter()
                .filter(|(from, to)| match (*from == service, *to == service) {
                    (true, _) => !pairs.signing.contains_key(*to),
                    (_, true) => !pairs.checking.contains_key(*from),
                    _ => false,
                })
                .map(|(from, to)| format!("{from}>{to}"))
                .collect();
            if !missing.is_empty() {
                return Err(error(format!("lacks {}", missing.join(", "))));
            }
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_gets_the_keys_of_its_own_pairs_only() {
        let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_string());
        let media = render(&secret, "media-svc");
        let pairs = Pairs::parse("media-svc", &SecretString::from(media.clone()), false).unwrap();
        assert_eq!(pairs.signing.keys().collect::<Vec<_>>(), ["task-svc"]);
        assert_eq!(pairs.checking.keys().collect::<Vec<_>>(), ["api-gateway"]);
        assert_eq!(
            pairs.signing["task-svc"],
            derive(secret.expose_secret().as_bytes(), "media-svc", "task-svc")
        );
        // Another service's value, a value with a pair missing, and garbage are refused, each
        // naming the command that prints the right one.
        let tasks = SecretString::from(render(&secret, "task-svc"));
        let err = Pairs::parse("media-svc", &tasks, false).err().unwrap();
        assert!(err.to_string().contains("another service's"), "{err}");
        assert!(err.to_string().contains("taskmesh keys media-svc"), "{err}");
        let first = SecretString::from(media.split(',').next().unwrap().to_string());
        let err = Pairs::parse("media-svc", &first, false).err().unwrap();
        assert!(
            err.to_string().contains("lacks media-svc>task-svc"),
            "{err}"
        );
        let garbage = SecretString::from("media-svc>task-svc:abc".to_string());
        assert!(Pairs::parse("media-svc", &garbage, false).is_err());
    }
}
