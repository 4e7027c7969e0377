//! Configuration: a YAML file (`--config`), every key also a flag and an
//! environment variable; secrets also from files (Kubernetes Secrets).
//!
//! Precedence, highest first: flag, environment variable, config file,
//! built-in default. A secret given both as a value and as a file is an
//! error, not a silent choice.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::adapters::lease::LeaderElection;
use crate::adapters::report::{SlackConfig, DEFAULT_SLACK_API_URL};
use crate::core::secret::Secret;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not valid.
    #[error("invalid config file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// serde's message, with line and column.
        reason: String,
    },
    /// A secret file could not be read.
    #[error("cannot read {what} from {path}: {reason}")]
    SecretFile {
        /// Which secret (`webhook token`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (never the content).
        reason: String,
    },
    /// A secret was given both as a value and as a file.
    #[error("{what} is given both as a value and as a file; give one")]
    SecretTwice {
        /// Which secret.
        what: &'static str,
    },
    /// A secret given as an empty (or blank) value: it would let in a
    /// request that carries no credential at all.
    #[error(
        "{what} is empty ({env}, --{flag} or the config key {key}); an empty secret \
         would let in a request with no credential: refusing to start"
    )]
    EmptySecret {
        /// Which secret.
        what: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Its flag, without the dashes.
        flag: String,
        /// Its config file key.
        key: String,
    },
    /// A secret file that holds nothing (a Secret mounted before it was
    /// filled, a template that rendered "").
    #[error(
        "{what} file {path} is empty; an empty secret would let in a request with no \
         credential: refusing to start"
    )]
    EmptySecretFile {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// An empty basic-auth user name.
    #[error(
        "the webhook user is empty (ROLLBACKD_WEBHOOK_USER, --webhook-user or the config \
         key webhook_user): refusing to start"
    )]
    EmptyWebhookUser,
    /// A webhook credential equal to the operator token: whoever holds the
    /// webhook secret could read history and replay.
    #[error(
        "the {what} equals the operator token; they must differ, or the webhook \
         credential would also open the operator API"
    )]
    SharedSecret {
        /// `webhook token` or `webhook password`.
        what: &'static str,
    },
    /// Basic auth half configured.
    #[error("basic auth needs both a user and a password")]
    BasicAuthIncomplete,
    /// No webhook credentials and no explicit opt-out.
    #[error(
        "no webhook credentials configured: set ROLLBACKD_WEBHOOK_TOKEN[_FILE] or \
         ROLLBACKD_WEBHOOK_USER + ROLLBACKD_WEBHOOK_PASSWORD[_FILE], or pass --insecure-no-auth"
    )]
    NoAuth,
    /// Both Slack transports configured.
    #[error(
        "both a Slack webhook URL and a Slack bot token are configured; give one \
         (ROLLBACKD_SLACK_WEBHOOK_URL[_FILE] or ROLLBACKD_SLACK_BOT_TOKEN[_FILE])"
    )]
    SlackBothTransports,
    /// A bot token without a channel to post to.
    #[error("a Slack bot token needs a channel: set ROLLBACKD_SLACK_CHANNEL")]
    SlackChannelMissing,
    /// A channel without a bot token (an incoming webhook has its own).
    #[error(
        "ROLLBACKD_SLACK_CHANNEL is set without a Slack bot token; an incoming \
         webhook posts to the channel it was created for"
    )]
    SlackChannelWithoutToken,
    /// Lease timings that cannot work.
    #[error(
        "leader election: the renew grace ({renew_grace} s) must be shorter than the lease \
         duration ({lease_duration} s)"
    )]
    LeaseTiming {
        /// Seconds.
        lease_duration: u64,
        /// Seconds.
        renew_grace: u64,
    },
    /// Leader election without a name for this replica.
    #[error(
        "leader election needs this replica's name: set ROLLBACKD_IDENTITY (the pod name) or HOSTNAME"
    )]
    NoIdentity,
    /// An identity that cannot be told apart from the address in the Lease.
    #[error("ROLLBACKD_IDENTITY must not contain '@' (the Lease holds identity@address)")]
    BadIdentity,
    /// A replica that cannot process asking to lead.
    #[error(
        "an intake-only replica cannot take part in leader election: as leader it would \
         take every replica's webhooks and process none"
    )]
    IntakeOnlyLeader,
    /// Not host:port.
    #[error("advertise address {0:?} is not host:port")]
    AdvertiseAddress(String),
    /// A Slack URL that is not an http(s) URL (the value is not repeated:
    /// a webhook URL is a secret).
    #[error("the {what} is not an http(s) URL")]
    SlackUrl {
        /// `Slack webhook URL` or `Slack API URL`.
        what: &'static str,
    },
}

/// `rollbackd serve` options. Every one is also an environment variable and
/// a key of the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// YAML config file; flags and environment variables override its keys.
    #[arg(long, env = "ROLLBACKD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:9095].
    #[arg(long, env = "ROLLBACKD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder of rules files [default: rules/, or the embedded defaults when
    /// that folder does not exist].
    #[arg(long, env = "ROLLBACKD_RULES")]
    pub rules: Option<PathBuf>,
    /// SQLite journal file, created on first start [default: rollbackd.db].
    #[arg(long, env = "ROLLBACKD_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Decide and record, but change nothing in the cluster.
    #[arg(long, env = "ROLLBACKD_DRY_RUN", num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: Option<bool>,
    /// Largest webhook body accepted, in bytes [default: 1048576].
    #[arg(long, env = "ROLLBACKD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bearer token Alertmanager sends (prefer the _FILE form).
    #[arg(long, env = "ROLLBACKD_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "ROLLBACKD_WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// Basic-auth user Alertmanager sends.
    #[arg(long, env = "ROLLBACKD_WEBHOOK_USER")]
    pub webhook_user: Option<String>,
    /// Basic-auth password (prefer the _FILE form).
    #[arg(long, env = "ROLLBACKD_WEBHOOK_PASSWORD", hide_env_values = true)]
    pub webhook_password: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, env = "ROLLBACKD_WEBHOOK_PASSWORD_FILE")]
    pub webhook_password_file: Option<PathBuf>,
    /// Token for the operator API (`/api/v1/...`), distinct from the webhook's.
    #[arg(long, env = "ROLLBACKD_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// File holding the operator token.
    #[arg(long, env = "ROLLBACKD_OPERATOR_TOKEN_FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// Accept webhooks without credentials (only for local trials).
    #[arg(long, env = "ROLLBACKD_INSECURE_NO_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_no_auth: Option<bool>,
    /// Journal webhooks but do not process them (a standby or maintenance
    /// mode: the work waits in the journal for a replica that processes).
    #[arg(long, env = "ROLLBACKD_INTAKE_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub intake_only: Option<bool>,
    /// Slack incoming webhook URL (prefer the _FILE form: the URL is the
    /// credential).
    #[arg(long, env = "ROLLBACKD_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// File holding the Slack incoming webhook URL.
    #[arg(long, env = "ROLLBACKD_SLACK_WEBHOOK_URL_FILE")]
    pub slack_webhook_url_file: Option<PathBuf>,
    /// Slack bot token, `xoxb-...` (prefer the _FILE form).
    #[arg(long, env = "ROLLBACKD_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,
    /// File holding the Slack bot token.
    #[arg(long, env = "ROLLBACKD_SLACK_BOT_TOKEN_FILE")]
    pub slack_bot_token_file: Option<PathBuf>,
    /// Channel the bot posts to (name or ID); the alert annotation
    /// `slack_channel` overrides it.
    #[arg(long, env = "ROLLBACKD_SLACK_CHANNEL")]
    pub slack_channel: Option<String>,
    /// Slack Web API base URL [default: https://slack.com/api].
    #[arg(long, env = "ROLLBACKD_SLACK_API_URL")]
    pub slack_api_url: Option<String>,
    /// Channels an alert's `slack_channel` annotation may name, comma
    /// separated [default: none; the annotation is not followed].
    #[arg(long, env = "ROLLBACKD_SLACK_ALLOWED_CHANNELS", value_delimiter = ',')]
    pub slack_allowed_channels: Option<Vec<String>>,
    /// Run several replicas: elect one through a Lease; it spends the rate
    /// budgets and runs holds, the others hand their webhooks to it.
    #[arg(long, env = "ROLLBACKD_LEADER_ELECT", num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: Option<bool>,
    /// Name of the Lease [default: rollbackd].
    #[arg(long, env = "ROLLBACKD_LEADER_ELECT_LEASE_NAME")]
    pub leader_elect_lease_name: Option<String>,
    /// Namespace of the Lease [default: POD_NAMESPACE, else the kubeconfig's
    /// namespace].
    #[arg(long, env = "ROLLBACKD_LEADER_ELECT_NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// Seconds a leader's Lease stays valid after its last renewal; a
    /// replica takes over this long after the leader stops renewing
    /// [default: 15].
    #[arg(long, env = "ROLLBACKD_LEADER_ELECT_LEASE_DURATION")]
    pub leader_elect_lease_duration: Option<u64>,
    /// The leader renews this many seconds before its Lease runs out
    /// [default: 5].
    #[arg(long, env = "ROLLBACKD_LEADER_ELECT_RENEW_GRACE")]
    pub leader_elect_renew_grace: Option<u64>,
    /// This replica's name in the Lease [default: $HOSTNAME, the pod name].
    #[arg(long, env = "ROLLBACKD_IDENTITY")]
    pub identity: Option<String>,
    /// host:port at which the other replicas reach this one (the pod IP and
    /// port) [default: the listen address, when it names one host].
    #[arg(long, env = "ROLLBACKD_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// This cluster's name, as alerts carry it in their cluster label
    /// (`guard.cluster_label`, default `cluster`): an alert for another
    /// cluster is refused [default: none; alerts are not checked].
    #[arg(long, env = "ROLLBACKD_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
}

/// The config file's keys (same names as the flags, with underscores).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    rules: Option<PathBuf>,
    journal: Option<PathBuf>,
    dry_run: Option<bool>,
    max_body_bytes: Option<usize>,
    webhook_token: Option<String>,
    webhook_token_file: Option<PathBuf>,
    webhook_user: Option<String>,
    webhook_password: Option<String>,
    webhook_password_file: Option<PathBuf>,
    operator_token: Option<String>,
    operator_token_file: Option<PathBuf>,
    insecure_no_auth: Option<bool>,
    intake_only: Option<bool>,
    slack_webhook_url: Option<String>,
    slack_webhook_url_file: Option<PathBuf>,
    slack_bot_token: Option<String>,
    slack_bot_token_file: Option<PathBuf>,
    slack_channel: Option<String>,
    slack_api_url: Option<String>,
    slack_allowed_channels: Option<Vec<String>>,
    leader_elect: Option<bool>,
    leader_elect_lease_name: Option<String>,
    leader_elect_namespace: Option<String>,
    leader_elect_lease_duration: Option<u64>,
    leader_elect_renew_grace: Option<u64>,
    identity: Option<String>,
    advertise_address: Option<String>,
    cluster_name: Option<String>,
}

/// Where the rules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// A folder of YAML files.
    Dir(PathBuf),
    /// The `rules/default.yaml` compiled into the binary.
    Embedded,
}

/// How `/webhook` callers prove who they are.
#[derive(Debug, Clone, Default)]
pub struct WebhookAuth {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<Secret>,
    /// `Authorization: Basic <user:password>`.
    pub basic: Option<(String, Secret)>,
}

impl WebhookAuth {
    /// Whether any credential is configured.
    pub fn is_configured(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }
}

/// Resolved settings for `serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Rules location.
    pub rules: RulesSource,
    /// Journal file.
    pub journal: PathBuf,
    /// Global dry-run.
    pub dry_run: bool,
    /// Body limit for `/webhook`.
    pub max_body_bytes: usize,
    /// Webhook credentials.
    pub webhook_auth: WebhookAuth,
    /// Operator API token.
    pub operator_token: Option<Secret>,
    /// Accept unauthenticated webhooks and operator calls.
    pub insecure_no_auth: bool,
    /// Journal only; do not process.
    pub intake_only: bool,
    /// Where reports go.
    pub slack: SlackConfig,
    /// Channels an alert's `slack_channel` annotation may name; empty: the
    /// annotation is not followed (whoever writes alert rules could post
    /// incidents anywhere the bot is).
    pub slack_allowed_channels: Vec<String>,
    /// Leader election among replicas, when enabled.
    pub leader_election: Option<LeaderElection>,
    /// This cluster's name; `None`: alerts are not checked against one.
    pub cluster_name: Option<String>,
}

/// Default Lease duration, as client-go's leader election.
pub const DEFAULT_LEASE_DURATION: u64 = 15;
/// Default renew grace: the leader renews 10 s into a 15 s Lease.
pub const DEFAULT_RENEW_GRACE: u64 = 5;

/// Default listen address: all interfaces, port 9095 (next to
/// Alertmanager's 9093/9094, as DESIGN.md fixes it).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9095";
/// 1 MiB: a 1,000-alert group with long annotations fits; Alertmanager's
/// `max_alerts` keeps real groups far below.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

impl Settings {
    /// Merges flags/environment (already in `args` through clap) with the
    /// config file, reads secret files, and checks the result.
    pub fn resolve(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let slack = slack_config(args, &file)?;
        let intake_only = args.intake_only.or(file.intake_only).unwrap_or(false);
        let leader_election = leader_election(args, &file, intake_only)?;
        let pick = |a: &Option<PathBuf>, f: &Option<PathBuf>| a.clone().or_else(|| f.clone());
        let rules = match args.rules.clone().or(file.rules) {
            Some(dir) => RulesSource::Dir(dir),
            None if Path::new("rules").is_dir() => RulesSource::Dir(PathBuf::from("rules")),
            None => RulesSource::Embedded,
        };
        let webhook_token = secret(
            "webhook token",
            "ROLLBACKD_WEBHOOK_TOKEN",
            args.webhook_token.clone().or(file.webhook_token),
            pick(&args.webhook_token_file, &file.webhook_token_file),
        )?;
        let webhook_password = secret(
            "webhook password",
            "ROLLBACKD_WEBHOOK_PASSWORD",
            args.webhook_password.clone().or(file.webhook_password),
            pick(&args.webhook_password_file, &file.webhook_password_file),
        )?;
        let webhook_user = args.webhook_user.clone().or(file.webhook_user);
        if webhook_user.as_ref().is_some_and(|u| u.trim().is_empty()) {
            return Err(ConfigError::EmptyWebhookUser);
        }
        let basic = match (webhook_user, webhook_password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(ConfigError::BasicAuthIncomplete),
        };
        let operator_token = secret(
            "operator token",
            "ROLLBACKD_OPERATOR_TOKEN",
            args.operator_token.clone().or(file.operator_token),
            pick(&args.operator_token_file, &file.operator_token_file),
        )?;
        let insecure_no_auth = args
            .insecure_no_auth
            .or(file.insecure_no_auth)
            .unwrap_or(false);
        let webhook_auth = WebhookAuth {
            bearer: webhook_token,
            basic,
        };
        if let Some(operator) = &operator_token {
            if webhook_auth.bearer.as_ref() == Some(operator) {
                return Err(ConfigError::SharedSecret {
                    what: "webhook token",
                });
            }
            if webhook_auth
                .basic
                .as_ref()
                .is_some_and(|(_, p)| p == operator)
            {
                return Err(ConfigError::SharedSecret {
                    what: "webhook password",
                });
            }
        }
        if !webhook_auth.is_configured() && !insecure_no_auth {
            return Err(ConfigError::NoAuth);
        }
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            rules,
            journal: pick(&args.journal, &file.journal)
                .unwrap_or_else(|| PathBuf::from("rollbackd.db")),
            dry_run: args.dry_run.or(file.dry_run).unwrap_or(false),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            webhook_auth,
            operator_token,
            insecure_no_auth,
            intake_only,
            slack,
            slack_allowed_channels: args
                .slack_allowed_channels
                .clone()
                .or(file.slack_allowed_channels)
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            leader_election,
            cluster_name: args
                .cluster_name
                .clone()
                .or(file.cluster_name)
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
        })
    }
}

/// Leader election settings, when `leader_elect` is on (`intake_only`:
/// the resolved setting).
fn leader_election(
    args: &ServeArgs,
    file: &FileConfig,
    intake_only: bool,
) -> Result<Option<LeaderElection>, ConfigError> {
    if !args.leader_elect.or(file.leader_elect).unwrap_or(false) {
        return Ok(None);
    }
    if intake_only {
        // Elected, it would take every replica's work and process none.
        return Err(ConfigError::IntakeOnlyLeader);
    }
    let pick = |a: &Option<String>, f: &Option<String>| {
        a.clone()
            .or_else(|| f.clone())
            .filter(|v| !v.trim().is_empty())
    };
    let lease_duration = args
        .leader_elect_lease_duration
        .or(file.leader_elect_lease_duration)
        .unwrap_or(DEFAULT_LEASE_DURATION);
    let renew_grace = args
        .leader_elect_renew_grace
        .or(file.leader_elect_renew_grace)
        .unwrap_or(DEFAULT_RENEW_GRACE);
    if renew_grace >= lease_duration || lease_duration > i32::MAX as u64 {
        return Err(ConfigError::LeaseTiming {
            lease_duration,
            renew_grace,
        });
    }
    let identity = pick(&args.identity, &file.identity)
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .ok_or(ConfigError::NoIdentity)?;
    if identity.contains('@') {
        return Err(ConfigError::BadIdentity);
    }
    let advertise_address = pick(&args.advertise_address, &file.advertise_address);
    if let Some(addr) = &advertise_address {
        check_host_port(addr)?;
    }
    Ok(Some(LeaderElection {
        lease_name: pick(&args.leader_elect_lease_name, &file.leader_elect_lease_name)
            .unwrap_or_else(|| "rollbackd".into()),
        namespace: pick(&args.leader_elect_namespace, &file.leader_elect_namespace).or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
        }),
        lease_duration,
        renew_grace,
        identity,
        advertise_address,
    }))
}

/// `host:port`, with a port number.
fn check_host_port(addr: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::AdvertiseAddress(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// The Slack transport: an incoming webhook or a bot token with a channel,
/// never both.
fn slack_config(args: &ServeArgs, file: &FileConfig) -> Result<SlackConfig, ConfigError> {
    let pick = |a: &Option<PathBuf>, f: &Option<PathBuf>| a.clone().or_else(|| f.clone());
    let webhook_url = secret(
        "Slack webhook URL",
        "ROLLBACKD_SLACK_WEBHOOK_URL",
        args.slack_webhook_url
            .clone()
            .or_else(|| file.slack_webhook_url.clone()),
        pick(&args.slack_webhook_url_file, &file.slack_webhook_url_file),
    )?;
    let bot_token = secret(
        "Slack bot token",
        "ROLLBACKD_SLACK_BOT_TOKEN",
        args.slack_bot_token
            .clone()
            .or_else(|| file.slack_bot_token.clone()),
        pick(&args.slack_bot_token_file, &file.slack_bot_token_file),
    )?;
    let channel = args
        .slack_channel
        .clone()
        .or_else(|| file.slack_channel.clone())
        .filter(|c| !c.trim().is_empty());
    let api_url = args
        .slack_api_url
        .clone()
        .or_else(|| file.slack_api_url.clone())
        .unwrap_or_else(|| DEFAULT_SLACK_API_URL.to_string());
    let is_http_url =
        |url: &str| reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    match (webhook_url, bot_token, channel) {
        (Some(_), Some(_), _) => Err(ConfigError::SlackBothTransports),
        (Some(_), None, Some(_)) => Err(ConfigError::SlackChannelWithoutToken),
        (Some(url), None, None) if !is_http_url(url.expose()) => Err(ConfigError::SlackUrl {
            what: "Slack webhook URL",
        }),
        (Some(url), None, None) => Ok(SlackConfig::Webhook { url }),
        (None, Some(_), None) => Err(ConfigError::SlackChannelMissing),
        (None, Some(_), Some(_)) if !is_http_url(&api_url) => Err(ConfigError::SlackUrl {
            what: "Slack API URL",
        }),
        (None, Some(token), Some(channel)) => Ok(SlackConfig::Bot {
            token,
            channel,
            api_url,
        }),
        (None, None, Some(_)) => Err(ConfigError::SlackChannelWithoutToken),
        (None, None, None) => Ok(SlackConfig::Disabled),
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_norway::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A secret from a value or a file (trailing newline dropped, as
/// `kubectl create secret --from-file` keeps it).
///
/// `env` is the secret's variable (`ROLLBACKD_WEBHOOK_TOKEN`); the flag and
/// the config key are derived from it for the error that names them. An
/// empty or blank secret is refused: compared against an empty credential,
/// it would let in a request that carries none.
fn secret(
    what: &'static str,
    env: &'static str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::SecretTwice { what }),
        (Some(v), None) if v.trim().is_empty() => {
            let key = env.trim_start_matches("ROLLBACKD_").to_ascii_lowercase();
            Err(ConfigError::EmptySecret {
                what,
                env,
                flag: key.replace('_', "-"),
                key,
            })
        }
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::SecretFile {
                what,
                path: path.clone(),
                reason: e.kind().to_string(),
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                return Err(ConfigError::EmptySecretFile { what, path });
            }
            Ok(Some(Secret::new(text)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<secret>");
        let auth = WebhookAuth {
            bearer: Some(s.clone()),
            basic: Some(("am".into(), s)),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn serve_refuses_to_start_without_credentials() {
        let err = Settings::resolve(&ServeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
        let ok = Settings::resolve(&ServeArgs {
            insecure_no_auth: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.listen.to_string(), "0.0.0.0:9095");
        assert_eq!(ok.max_body_bytes, 1 << 20);
    }

    #[test]
    fn secret_files_are_read_and_flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let config = dir.path().join("c.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:1234\njournal: /tmp/x.db\nwebhook_token_file: {}\ndry_run: true\n",
                token.display()
            ),
        )
        .unwrap();
        let s = Settings::resolve(&ServeArgs {
            config: Some(config),
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.journal, PathBuf::from("/tmp/x.db"));
        assert!(s.dry_run);
        assert_eq!(s.webhook_auth.bearer.unwrap().expose(), "s3cret");
    }

    #[test]
    fn unknown_config_keys_and_double_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, "listen: 127.0.0.1:1\nlsiten: x\n").unwrap();
        let err = Settings::resolve(&ServeArgs {
            config: Some(config),
            insecure_no_auth: Some(true),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `lsiten`"), "{err}");
        let err = Settings::resolve(&ServeArgs {
            webhook_token: Some("a".into()),
            webhook_token_file: Some("/nonexistent".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "webhook token is given both as a value and as a file; give one"
        );
    }

    #[test]
    fn an_empty_secret_refuses_to_start_and_names_where_it_came_from() {
        let err = |args: ServeArgs| Settings::resolve(&args).unwrap_err().to_string();
        for blank in ["", "  ", "\n"] {
            assert_eq!(
                err(ServeArgs {
                    webhook_token: Some(blank.into()),
                    ..Default::default()
                }),
                "webhook token is empty (ROLLBACKD_WEBHOOK_TOKEN, --webhook-token or the config \
                 key webhook_token); an empty secret would let in a request with no credential: \
                 refusing to start"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert_eq!(
            err(ServeArgs {
                webhook_token_file: Some(empty.clone()),
                ..Default::default()
            }),
            format!(
                "webhook token file {} is empty; an empty secret would let in a request with no \
                 credential: refusing to start",
                empty.display()
            )
        );
        // Basic auth: an empty password (value or file) and an empty user.
        assert!(err(ServeArgs {
            webhook_user: Some("am".into()),
            webhook_password: Some(String::new()),
            ..Default::default()
        })
        .starts_with("webhook password is empty (ROLLBACKD_WEBHOOK_PASSWORD, --webhook-password"));
        assert!(err(ServeArgs {
            webhook_user: Some("am".into()),
            webhook_password_file: Some(empty.clone()),
            ..Default::default()
        })
        .starts_with("webhook password file "));
        assert!(err(ServeArgs {
            webhook_user: Some(String::new()),
            webhook_password: Some("pw".into()),
            ..Default::default()
        })
        .starts_with("the webhook user is empty (ROLLBACKD_WEBHOOK_USER"));
        // The operator token and Slack's secrets too, even with auth off.
        assert!(err(ServeArgs {
            insecure_no_auth: Some(true),
            operator_token: Some(String::new()),
            ..Default::default()
        })
        .starts_with("operator token is empty (ROLLBACKD_OPERATOR_TOKEN, --operator-token"));
        assert!(err(ServeArgs {
            insecure_no_auth: Some(true),
            slack_bot_token_file: Some(empty),
            slack_channel: Some("#x".into()),
            ..Default::default()
        })
        .starts_with("Slack bot token file "));
    }

    #[test]
    fn a_webhook_credential_equal_to_the_operator_token_is_refused() {
        let err = |args: ServeArgs| Settings::resolve(&args).unwrap_err().to_string();
        assert_eq!(
            err(ServeArgs {
                webhook_token: Some("same".into()),
                operator_token: Some("same".into()),
                ..Default::default()
            }),
            "the webhook token equals the operator token; they must differ, or the webhook \
             credential would also open the operator API"
        );
        assert!(err(ServeArgs {
            webhook_user: Some("am".into()),
            webhook_password: Some("same".into()),
            operator_token: Some("same".into()),
            ..Default::default()
        })
        .starts_with("the webhook password equals the operator token"));
        let ok = Settings::resolve(&ServeArgs {
            webhook_token: Some("hook".into()),
            operator_token: Some("operator".into()),
            ..Default::default()
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn unreadable_secret_file_error_names_the_file_not_the_content() {
        let err = Settings::resolve(&ServeArgs {
            webhook_token_file: Some("/nonexistent/token".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read webhook token from /nonexistent/token: entity not found"
        );
    }

    #[test]
    fn slack_is_a_webhook_or_a_bot_with_a_channel_never_both() {
        let base = ServeArgs {
            insecure_no_auth: Some(true),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&base).unwrap().slack,
            SlackConfig::Disabled
        );
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("slack-url");
        std::fs::write(&url_file, "https://hooks.slack.com/services/T0/B0/XyZ\n").unwrap();
        let s = Settings::resolve(&ServeArgs {
            slack_webhook_url_file: Some(url_file.clone()),
            ..base.clone()
        })
        .unwrap();
        assert_eq!(
            s.slack,
            SlackConfig::Webhook {
                url: Secret::new("https://hooks.slack.com/services/T0/B0/XyZ")
            }
        );
        assert!(!format!("{s:?}").contains("XyZ"));

        let token_file = dir.path().join("slack-token");
        std::fs::write(&token_file, "xoxb-1-2\n").unwrap();
        let config = dir.path().join("c.yaml");
        std::fs::write(
            &config,
            format!(
                "slack_bot_token_file: {}\nslack_channel: '#rollbacks'\n",
                token_file.display()
            ),
        )
        .unwrap();
        let s = Settings::resolve(&ServeArgs {
            config: Some(config.clone()),
            ..base.clone()
        })
        .unwrap();
        assert_eq!(
            s.slack,
            SlackConfig::Bot {
                token: Secret::new("xoxb-1-2"),
                channel: "#rollbacks".into(),
                api_url: "https://slack.com/api".into(),
            }
        );
        let s = Settings::resolve(&ServeArgs {
            config: Some(config.clone()),
            slack_channel: Some("C0123".into()),
            slack_api_url: Some("http://127.0.0.1:1/api".into()),
            ..base.clone()
        })
        .unwrap();
        assert!(matches!(
            s.slack,
            SlackConfig::Bot { ref channel, ref api_url, .. }
                if channel == "C0123" && api_url == "http://127.0.0.1:1/api"
        ));

        let err = |args: ServeArgs| Settings::resolve(&args).unwrap_err().to_string();
        assert!(err(ServeArgs {
            config: Some(config),
            slack_webhook_url_file: Some(url_file),
            ..base.clone()
        })
        .starts_with("both a Slack webhook URL and a Slack bot token are configured"));
        assert_eq!(
            err(ServeArgs {
                slack_bot_token: Some("xoxb-1-2".into()),
                ..base.clone()
            }),
            "a Slack bot token needs a channel: set ROLLBACKD_SLACK_CHANNEL"
        );
        assert!(err(ServeArgs {
            slack_channel: Some("#x".into()),
            ..base.clone()
        })
        .starts_with("ROLLBACKD_SLACK_CHANNEL is set without a Slack bot token"));
        let bad = err(ServeArgs {
            slack_webhook_url: Some("hooks.slack.com/services/T0/B0/XyZ".into()),
            ..base.clone()
        });
        assert_eq!(bad, "the Slack webhook URL is not an http(s) URL");
        assert_eq!(
            err(ServeArgs {
                slack_webhook_url: Some("x".into()),
                slack_webhook_url_file: Some("/nonexistent".into()),
                ..base
            }),
            "Slack webhook URL is given both as a value and as a file; give one"
        );
    }

    #[test]
    fn leader_election_settings_are_checked() {
        let base = ServeArgs {
            insecure_no_auth: Some(true),
            leader_elect: Some(true),
            identity: Some("rollbackd-0".into()),
            ..Default::default()
        };
        let le = Settings::resolve(&base).unwrap().leader_election.unwrap();
        assert_eq!(
            (le.lease_name.as_str(), le.lease_duration, le.renew_grace),
            ("rollbackd", 15, 5)
        );
        assert_eq!(le.advertise_address, None);
        let err = |args: ServeArgs| Settings::resolve(&args).unwrap_err().to_string();
        assert_eq!(
            err(ServeArgs {
                leader_elect_lease_duration: Some(5),
                leader_elect_renew_grace: Some(5),
                ..base.clone()
            }),
            "leader election: the renew grace (5 s) must be shorter than the lease duration (5 s)"
        );
        assert_eq!(
            err(ServeArgs {
                identity: Some("a@b".into()),
                ..base.clone()
            }),
            "ROLLBACKD_IDENTITY must not contain '@' (the Lease holds identity@address)"
        );
        for bad in ["10.0.0.1", "10.0.0.1:0", ":9095", "http://x:1", "h:port"] {
            assert_eq!(
                err(ServeArgs {
                    advertise_address: Some(bad.into()),
                    ..base.clone()
                }),
                format!("advertise address {bad:?} is not host:port")
            );
        }
        let ok = Settings::resolve(&ServeArgs {
            advertise_address: Some("10.0.3.7:9095".into()),
            ..base.clone()
        })
        .unwrap();
        assert_eq!(
            ok.leader_election.unwrap().advertise_address.as_deref(),
            Some("10.0.3.7:9095")
        );
        assert!(err(ServeArgs {
            intake_only: Some(true),
            ..base.clone()
        })
        .starts_with("an intake-only replica cannot take part in leader election"));
        let off = Settings::resolve(&ServeArgs {
            leader_elect: None,
            ..base
        })
        .unwrap();
        assert_eq!(off.leader_election, None);
    }
}
