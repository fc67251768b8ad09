//! The `estd` command: serve, and administer users and templates.
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use estd::app;
use estd::auth;
use estd::config::Config;

#[derive(Parser)]
#[command(
    name = "estd",
    version,
    about = "EST server (RFC 7030 / RFC 8951) with its own CA"
)]
struct Cli {
    /// Configuration file [default: conf/estd.toml when it exists]
    #[arg(long, global = true, env = "ESTD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (generates a development CA and TLS certificate on first start)
    Serve,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Show certificate templates (EST labels)
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Decide requests waiting for manual approval
    #[command(subcommand)]
    Pending(PendingCommand),
    /// Issued certificates: list, show, revoke
    #[command(subcommand)]
    Cert(CertCommand),
    /// The certificate authority: import an existing CA
    #[command(subcommand)]
    Ca(CaCommand),
    /// SCEP: one-time challenge passwords
    #[command(subcommand)]
    Scep(app::scep_cli::ScepCommand),
    /// Enrollment codes: one-time secrets devices present over EST or SCEP
    #[command(subcommand)]
    Code(app::code_cli::CodeCommand),
    /// Devices enrolling with their manufacturer certificate (IDevID): allow- and deny-lists
    #[command(subcommand)]
    Device(app::device_cli::DeviceCommand),
    /// An EST client for estd and any other EST server, and the MDM connector's test
    Client(Box<estd::client::cli::ClientArgs>),
    /// Was a request received, and why did it fail? (the audit log)
    Requests {
        /// How far back: 30s, 10m, 2h, 1d
        #[arg(long, default_value = "1h")]
        since: String,
        /// Only this principal's requests
        #[arg(long)]
        user: Option<String>,
        /// Only failed requests (HTTP status 400 and above, and SCEP FAILUREs)
        #[arg(long)]
        failed: bool,
        /// At most this many
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// List issued certificates, newest first
    List {
        /// Only those this user requested
        #[arg(long)]
        user: Option<String>,
        /// Only those of this template
        #[arg(long)]
        template: Option<String>,
        /// valid, revoked or expired
        #[arg(long)]
        status: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// Show one certificate (PEM included)
    Show { serial: String },
    /// Revoke a certificate: it is listed in the CRL, OCSP answers "revoked", and it can no
    /// longer be renewed (nor its key certified again)
    Revoke {
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation, privilegeWithdrawn
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Who revokes (recorded)
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Make the CA's key inside a PKCS#11 token (sensitive, never extractable), then a
    /// self-signed CA certificate in ca.dir, or a certificate request for an external root.
    /// The module comes from --module, ca.pkcs11_module or the URI; the PIN from
    /// ca.pin_file or ESTD_CA_PIN.
    Init {
        /// The key's PKCS#11 URI, e.g. "pkcs11:token=estd;object=issuing-ca"
        #[arg(long)]
        pkcs11: String,
        /// ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096
        #[arg(long, default_value = "ec-p256")]
        key_type: String,
        /// Write a certificate request (PEM) for the key here
        #[arg(
            long,
            conflicts_with = "self_signed",
            required_unless_present = "self_signed"
        )]
        csr: Option<PathBuf>,
        /// Make a self-signed CA certificate (a root) in ca.dir
        #[arg(long)]
        self_signed: bool,
        /// The CA's common name
        #[arg(long, default_value = "estd issuing CA")]
        name: String,
        /// The vendor's PKCS#11 library (.so)
        #[arg(long)]
        module: Option<PathBuf>,
    },
    /// Use an existing CA: its certificate and key become estd's issuing CA (in ca.dir)
    Import {
        /// The issuing CA certificate (PEM)
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM, PKCS#8; RSA, P-256, P-384 or Ed25519)
        #[arg(long, required_unless_present = "pkcs11", conflicts_with = "pkcs11")]
        key: Option<PathBuf>,
        /// Or its key in a PKCS#11 token (as made by `ca init --pkcs11 … --csr`); the module
        /// and PIN as for `ca init`
        #[arg(long)]
        pkcs11: Option<String>,
        /// The vendor's PKCS#11 library (.so), with --pkcs11
        #[arg(long, requires = "pkcs11")]
        module: Option<PathBuf>,
        /// The certificates above it up to the root (PEM); not needed for a root CA
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Replace a CA already there (its files are kept beside, renamed)
        #[arg(long)]
        force: bool,
    },
    /// The CA certificates, and where each key lives (a file, or a token's URI)
    Show,
}

#[derive(Subcommand)]
enum PendingCommand {
    /// List requests waiting for a decision (--all: every request, decided or not)
    List {
        #[arg(long)]
        all: bool,
    },
    /// Approve a request: the client's next retry gets the certificate
    Approve {
        id: i64,
        /// Who decides (recorded)
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Reject a request: the client's next retry gets 403 with the reason
    Reject {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; without --password-stdin a random password is generated and printed
    Add {
        name: String,
        /// Group to put the user in (repeatable)
        #[arg(long = "group", short = 'g')]
        groups: Vec<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their groups
    List,
    /// Set a user's password; without --password-stdin a random one is generated and printed.
    /// Ends the user's portal and API sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: no log-in, enrollment or renewal of their certificates; ends their
    /// sessions (on every instance: they live in the store). `enable` undoes it.
    Disable { name: String },
    /// Enable a disabled user again
    Enable { name: String },
    /// Delete a user (their certificates and audit rows stay); ends their sessions
    Delete { name: String },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// List templates
    List,
    /// Show one template: every key as it would be written in its TOML file (defaults
    /// filled in, OIDs named), then what /csrattrs asks for
    Show {
        name: String,
        /// One JSON object instead (for scripts)
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing(config: &Config, serving: bool) {
    // Administrative commands print their results; their logs are only worth seeing when
    // something is wrong, unless the configuration asks for more than the default.
    let filter = if serving || config.log_filter != "info" {
        config.log_filter.as_str()
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // colour codes only for a person at a terminal, not for journald or a log file
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Client(args) = cli.command {
        // a client needs no server configuration
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(estd::client::cli::run(*args)),
            Err(e) => {
                eprintln!("estd client: cannot start the runtime: {e}");
                ExitCode::from(2)
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("estd: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config, matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("estd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("estd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => serve(config).await,
        Command::User(cmd) => user(cmd, config).await,
        Command::Template(cmd) => template(cmd, &config),
        Command::Pending(cmd) => pending(cmd, config).await,
        Command::Scep(cmd) => app::scep_cli::scep(cmd, &config).await,
        Command::Device(cmd) => app::device_cli::device(cmd, &config).await,
        Command::Code(cmd) => app::code_cli::code(cmd, &config).await,
        Command::Cert(cmd) => cert(cmd, config).await,
        Command::Ca(CaCommand::Init {
            pkcs11,
            key_type,
            csr,
            self_signed: _,
            name,
            module,
        }) => {
            estd::app::ca_cli::ca_init(&config, &pkcs11, &key_type, csr.as_deref(), &name, module)
        }
        Command::Ca(CaCommand::Import {
            cert,
            key,
            pkcs11,
            module,
            chain,
            force,
        }) => estd::app::ca_cli::ca_import(
            &config,
            &cert,
            key.as_deref(),
            pkcs11,
            module,
            chain.as_deref(),
            force,
        ),
        Command::Ca(CaCommand::Show) => estd::app::ca_cli::ca_show(&config),
        Command::Requests {
            since,
            user,
            failed,
            limit,
        } => requests(&since, user.as_deref(), failed, limit, config).await,
        Command::Client(_) => Err("estd client runs on its own".into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let running = app::start_with_shutdown(&config, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    if let Some(password) = &running.admin_password {
        estd::outln!(
            "Created user {:?} with password: {password}\n(also written to {}; shown only this once)",
            config.admin_user,
            config.data_dir.join(app::ADMIN_PASSWORD_FILE).display()
        );
    }
    // the EST line last: scripts read up to it
    if let Some(a) = running.revocation_addr {
        estd::outln!(
            "estd revocation on http://{a}/ (crl/{}.crl, ocsp)",
            estd::revocation::CA_NAME
        );
    }
    if let Some(a) = running.metrics_addr {
        estd::outln!("estd metrics on http://{a}/ (metrics, healthz, readyz)");
    }
    if let Some(a) = running.scep_addr {
        estd::outln!("estd scep on http://{a}/scep/<template> (and /scep, /cgi-bin/pkiclient.exe)");
    }
    estd::outln!(
        "estd listening on https://{}/.well-known/est/",
        running.addr
    );
    spawn_tls_reloader(
        config.clone(),
        running.tls_cert.clone(),
        running.state.enroll.clone(),
    );
    running.wait().await.map_err(|e| e.to_string())
}

/// SIGHUP: the TLS certificate and key files are read again (rotation without restart).
fn spawn_tls_reloader(
    config: Config,
    cert: std::sync::Arc<estd::server::ReloadableCert>,
    enroll: std::sync::Arc<estd::enroll::EnrollService>,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the TLS certificate cannot be reloaded");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match app::reload_tls(&config, &cert, &enroll) {
                Ok(serial) => tracing::info!(
                    cert = %config.tls_cert.display(),
                    %serial,
                    "SIGHUP: TLS certificate reloaded"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: TLS certificate not reloaded; the current one stays"
                ),
            }
        }
    });
}

async fn cert(cmd: CertCommand, config: Config) -> Result<(), String> {
    use estd::store::{CertFilter, CertStatus};
    let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
    match cmd {
        CertCommand::List {
            user,
            template,
            status,
            limit,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(CertStatus::parse(s).ok_or_else(|| {
                    format!("--status {s:?}: expected valid, revoked or expired")
                })?),
            };
            let filter = CertFilter {
                requester: user,
                template,
                status,
                text: None,
                now: estd::model::timestamp(std::time::SystemTime::now()),
                limit,
            };
            let list = store
                .list_certificates(&filter)
                .await
                .map_err(|e| e.to_string())?;
            if list.is_empty() {
                estd::outln!("no certificates");
            }
            for (c, r) in list {
                estd::outln!(
                    "{}	{}	{}	{}	{}	{}	{}",
                    c.serial,
                    estd::service::certs::status_text(&c, r.as_ref(), &filter.now),
                    c.template,
                    c.requester,
                    c.subject,
                    if c.san.is_empty() { "-" } else { &c.san },
                    c.not_after
                );
            }
            Ok(())
        }
        CertCommand::Show { serial } => {
            let serial = estd::revocation::normalize_serial(&serial);
            let Some(c) = store
                .find_certificate(&serial)
                .await
                .map_err(|e| e.to_string())?
            else {
                return Err(format!("no certificate with serial number {serial}"));
            };
            let r = store
                .find_revocation(&serial)
                .await
                .map_err(|e| e.to_string())?;
            let now = estd::model::timestamp(std::time::SystemTime::now());
            estd::outln!("serial:      {}", c.serial);
            estd::outln!(
                "status:      {}",
                estd::service::certs::status_text(&c, r.as_ref(), &now)
            );
            if let Some(r) = &r {
                estd::outln!(
                    "revoked:     {} by {} ({})",
                    r.revoked_at,
                    r.revoked_by,
                    estd::revocation::reason_name(r.reason)
                );
            }
            estd::outln!("subject:     {}", c.subject);
            estd::outln!(
                "san:         {}",
                if c.san.is_empty() { "-" } else { &c.san }
            );
            estd::outln!("template:    {}", c.template);
            estd::outln!("requester:   {}", c.requester);
            estd::outln!("operation:   {}", c.operation);
            estd::outln!("not before:  {}", c.not_before);
            estd::outln!("not after:   {}", c.not_after);
            estd::outln!("issued at:   {}", c.issued_at);
            if !c.description.is_empty() {
                estd::outln!("description: {}", c.description);
            }
            estd::out!("{}", estd::est::pem("CERTIFICATE", &c.der));
            Ok(())
        }
        CertCommand::Revoke { serial, reason, by } => {
            let code = estd::revocation::parse_reason(&reason).ok_or_else(|| {
                format!(
                    "--reason {reason:?}: expected one of {}",
                    estd::revocation::REASONS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let meta = estd::model::RequestMeta {
                request_id: format!("cli-{}", std::process::id()),
                peer: "cli".into(),
                label: None,
            };
            let (c, r) =
                estd::revocation::revoke_in_store(store.as_ref(), &meta, &serial, code, &by, true)
                    .await
                    .map_err(|e| e.to_string())?;
            estd::outln!(
                "revoked {} ({}) at {} ({}); a running server lists it in its CRL within a minute, OCSP at once",
                c.serial,
                c.subject,
                r.revoked_at,
                estd::revocation::reason_name(r.reason)
            );
            Ok(())
        }
    }
}

fn read_password(from_stdin: bool) -> Result<(String, bool), String> {
    if !from_stdin {
        return auth::random_password(20)
            .map(|p| (p, true))
            .map_err(|e| e.to_string());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (input is shown):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.len() > auth::MAX_PASSWORD {
        return Err(format!(
            "the password is longer than {} bytes",
            auth::MAX_PASSWORD
        ));
    }
    Ok((password, false))
}

async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn user(cmd: UserCommand, config: Config) -> Result<(), String> {
    let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
    match cmd {
        UserCommand::Add {
            name,
            groups,
            password_stdin,
        } => {
            auth::check_user_name(&name)?;
            let (password, generated) = read_password(password_stdin)?;
            store
                .add_user(&name, &hash(password.clone()).await?, &groups)
                .await
                .map_err(|e| match e {
                    estd::store::StoreError::Duplicate(_) => format!(
                        "a user named {name:?} exists already (user names are compared regardless of case)"
                    ),
                    other => other.to_string(),
                })?;
            estd::outln!("added user {name:?} in groups {groups:?}");
            if generated {
                estd::write_out(&format!("password: {}", password.as_str())).map_err(|e| {
                    format!(
                        "{e}: the generated password is lost; set one with estd user passwd {name}"
                    )
                })?;
            }
            Ok(())
        }
        UserCommand::List => {
            for u in store.list_users().await.map_err(|e| e.to_string())? {
                estd::outln!(
                    "{}\t{}\t{}{}",
                    estd::model::printable(&u.name),
                    estd::model::printable(&u.groups.join(",")),
                    u.created_at,
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            if !store
                .set_password(&name, &hash(password.clone()).await?)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no user named {name:?}"));
            }
            let ended = store
                .delete_user_sessions(&name)
                .await
                .map_err(|e| e.to_string())?;
            estd::outln!("password of {name:?} changed; {ended} session(s) ended");
            if generated {
                estd::write_out(&format!("password: {}", password.as_str())).map_err(|e| {
                    format!(
                        "{e}: the generated password is lost; run estd user passwd {name} again"
                    )
                })?;
            }
            Ok(())
        }
        UserCommand::Disable { name } => set_disabled(store.as_ref(), &name, true).await,
        UserCommand::Enable { name } => set_disabled(store.as_ref(), &name, false).await,
        UserCommand::Delete { name } => {
            if !store.delete_user(&name).await.map_err(|e| e.to_string())? {
                return Err(format!("no user named {name:?}"));
            }
            estd::outln!(
                "{name:?} deleted; their sessions ended, their certificates and audit rows kept"
            );
            Ok(())
        }
    }
}

/// `estd user disable|enable NAME`; either way the user's sessions end.
async fn set_disabled(
    store: &dyn estd::store::Store,
    name: &str,
    disable: bool,
) -> Result<(), String> {
    if !store
        .set_user_disabled(name, disable)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!("no user named {name:?}"));
    }
    let ended = store
        .delete_user_sessions(name)
        .await
        .map_err(|e| e.to_string())?;
    estd::outln!(
        "{name:?} {}; {ended} session(s) ended",
        if disable { "disabled" } else { "enabled" }
    );
    Ok(())
}

fn template(cmd: TemplateCommand, config: &Config) -> Result<(), String> {
    let templates = app::load_templates(config).map_err(|e| e.to_string())?;
    match cmd {
        TemplateCommand::List => {
            for t in templates.iter() {
                let default = if t.name == templates.default_template().name {
                    " (default)"
                } else {
                    ""
                };
                estd::outln!("{}{default}\t{}", t.name, t.description);
            }
            Ok(())
        }
        TemplateCommand::Show { name, json } => {
            let t = templates
                .get(Some(&name))
                .ok_or_else(|| format!("no template named {name:?}"))?;
            if json {
                let v = estd::policy::settings::to_json(&t, &config.est_group);
                estd::outln!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
                );
            } else {
                estd::out!("{}", estd::policy::settings::to_toml(&t, &config.est_group));
            }
            Ok(())
        }
    }
}

async fn pending(cmd: PendingCommand, config: Config) -> Result<(), String> {
    use estd::store::PendingState;
    let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
    match cmd {
        PendingCommand::List { all } => {
            let state = if all {
                None
            } else {
                Some(PendingState::Pending)
            };
            let list = store.list_pending(state).await.map_err(|e| e.to_string())?;
            if list.is_empty() {
                estd::outln!(
                    "no requests{}",
                    if all { "" } else { " waiting for approval" }
                );
            }
            for p in list {
                estd::outln!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
                    p.id,
                    p.state.as_str(),
                    p.template,
                    p.requester,
                    p.subject,
                    if p.san.is_empty() { "-" } else { &p.san },
                    p.created_at,
                    p.reason.map(|r| format!("\t{r}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        PendingCommand::Approve { id, by } => decide(store.as_ref(), id, true, &by, None).await,
        PendingCommand::Reject { id, reason, by } => {
            decide(store.as_ref(), id, false, &by, reason.as_deref()).await
        }
    }
}

async fn decide(
    store: &dyn estd::store::Store,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> Result<(), String> {
    let Some(p) = store.get_pending(id).await.map_err(|e| e.to_string())? else {
        return Err(format!("no request {id}"));
    };
    if !store
        .decide_pending(id, approve, by, reason)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!("request {id} is {}, not pending", p.state.as_str()));
    }
    let verb = if approve { "approved" } else { "rejected" };
    tracing::info!(id, by, verb, "pending request decided");
    estd::outln!("request {id} ({} for {}) {verb}", p.subject, p.requester);
    Ok(())
}

/// `30s`, `10m`, `2h`, `1d` → a duration.
async fn requests(
    since: &str,
    user: Option<&str>,
    failed: bool,
    limit: u32,
    config: Config,
) -> Result<(), String> {
    let since = std::time::SystemTime::now()
        .checked_sub(estd::model::parse_since(since).map_err(|e| format!("--since {e}"))?)
        .unwrap_or(std::time::UNIX_EPOCH);
    let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
    let events = store
        .find_audit(&estd::model::timestamp(since), user, failed, limit)
        .await
        .map_err(|e| e.to_string())?;
    if events.is_empty() {
        estd::outln!("no requests{}", if failed { " failed" } else { "" });
    }
    // every field a client could have chosen is escaped: no forged lines, no terminal codes
    let p = estd::model::printable;
    for e in events {
        estd::outln!(
            "{}  {}  {:<16} {:<10} {:<12} {:<22} {}  {}",
            e.at,
            e.request_id,
            p(&e.operation),
            p(e.label.as_deref().unwrap_or("-")),
            p(e.principal.as_deref().unwrap_or("-")),
            p(&e.peer),
            e.status,
            p(e.reason
                .as_deref()
                .or(e.serial.as_deref().map(|_| "issued"))
                .unwrap_or(""))
        );
    }
    Ok(())
}
