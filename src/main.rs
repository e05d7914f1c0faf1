//! The `corral` binary: `serve` (the default), `migrate`, and operator commands under `admin`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use corral::Application;
use corral::admin::accounts::{self, Change};
use corral::admin::backup::BackupDone;
use corral::admin::{self, SeedRequest};
use corral::auth::password::Hasher;
use corral::auth::{JwtKeys, secret};
use corral::config::Settings;
use corral::data_lock::DataDirLock;
use corral::store::redis::RedisStore;
use corral::store::sql::users::UserRecord;
use corral::store::{Db, Repos};
use secrecy::ExposeSecret;

/// Corral: a realtime social and claim server (chat, feeds, live promotions, animal claims).
///
/// With no arguments it serves on the embedded default: SQLite in ./data, no Redis,
/// listening on 127.0.0.1:8080.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Extra configuration file layered over the defaults (TOML).
    #[arg(long, global = true, env = "CORRAL_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory, overriding `server.data_dir`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket clients (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Operator commands that act on the node's database directly (never served over HTTP).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Bulk-create load-test accounts sharing one password and write a token for each to a
    /// JSON file (`[{id, username, token}, ...]`). Existing names are reused. Uses the
    /// database and signing key of the node configured by --config / --data-dir.
    SeedUsers {
        /// How many accounts.
        #[arg(long)]
        count: usize,
        /// Name prefix: accounts are <prefix>0 .. <prefix><count-1>.
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Where to write the tokens.
        #[arg(long)]
        out: PathBuf,
        /// Role of the created accounts: user, merchant or admin.
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: corral_protocol::Role,
        /// The password the accounts share.
        #[arg(long, default_value = "loadtest-password")]
        password: String,
    },
    /// Give an account a role: `admin` makes an admin, `user` (or `merchant`, for an account
    /// with a merchant profile) removes one. Its tokens stop working on running nodes (a
    /// cluster's at once over Redis, a single node within `auth.standing_refresh_ms`, 5 s by
    /// default); it logs in again to get the new role.
    SetRole {
        /// Username (or id).
        user: String,
        /// user, merchant or admin.
        #[arg(value_parser = parse_role)]
        role: corral_protocol::Role,
    },
    /// Disable an account: it cannot log in, and running nodes refuse its tokens and close its
    /// sockets (as for set-role: at once in a cluster, within 5 s by default alone).
    Disable {
        /// Username (or id).
        user: String,
    },
    /// Enable a disabled account again (it logs in again: its old tokens stay refused).
    Enable {
        /// Username (or id).
        user: String,
    },
    /// Set a new password, read from a prompt without echo (or the first line of standard
    /// input), or generated and printed with --generate. The account's tokens stop working.
    ResetPassword {
        /// Username (or id).
        user: String,
        /// Make up a random password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Copy the database while the node runs. SQLite: a consistent copy (VACUUM INTO) to OUT.
    /// PostgreSQL: runs pg_dump (custom format) into OUT when it is installed; otherwise prints
    /// the pg_dump and pg_restore commands for the configured database.
    Backup {
        /// The copy to write (must not exist).
        out: PathBuf,
    },
    /// Replace the SQLite database with a backup. Refused while a node runs on the data
    /// directory; the file must be an intact Corral database this binary can migrate; the
    /// replaced database is kept beside it (corral.db.replaced-<ms>). PostgreSQL: prints the
    /// pg_restore command.
    Restore {
        /// The backup to restore.
        file: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<corral_protocol::Role, String> {
    corral_protocol::Role::parse(s)
        .ok_or_else(|| format!("unknown role `{s}` (roles: user, merchant, admin)"))
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(listen) = cli.listen {
        settings.server.listen = listen.to_string();
    }
    if let Some(dir) = &cli.data_dir {
        settings.server.data_dir = dir.clone();
    }
    Ok(settings)
}

/// Large allocations (argon2's 19 MiB per password check) go straight to the kernel and back
/// when freed. glibc's default raises its mmap threshold after the first such free and then
/// keeps every later one in its arenas: each login left ~19 MiB resident, ten logins 200 MB.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", report(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, one line each, each said once: many error types quote their cause
/// in their own message (`"io: {0}"`), and the cause then follows again in the chain.
fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("error: {err}");
    let mut shown = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !shown.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        shown = text;
        cause = next.source();
    }
    out
}

fn run() -> anyhow::Result<()> {
    return_large_allocations_to_the_os();
    let cli = Cli::parse();
    let settings = settings(&cli)?;
    corral::telemetry::init_logging(&settings.log);
    actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Migrate => {
                let db = Db::connect(&settings.database, &settings.server.data_dir)
                    .await
                    .context("connecting to the database")?;
                db.migrate().await.context("running migrations")?;
                tracing::info!(backend = ?db.backend, "migrations applied");
                Ok(())
            }
            Command::Serve => serve(settings).await,
            Command::Admin { command } => run_admin(settings, command).await,
        }
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Held while serving: `admin restore` must not swap the embedded database underneath.
    let _data_dir = if settings.database.url.expose_secret().is_empty() {
        let dir = &settings.server.data_dir;
        let lock = DataDirLock::acquire(dir).context(
            "taking the data directory (one node per data directory: stop the other one, or \
             give this one another --data-dir)",
        )?;
        Some(lock)
    } else {
        None
    };
    let app = Application::build(settings)
        .await
        .context("starting the server")?;
    tracing::info!(port = app.port(), "corral serving");
    let state = app.state();
    let handle = app.server_handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        corral::shutdown::drain(state, handle).await;
    });
    app.run_until_stopped().await.context("serving")?;
    Ok(())
}

async fn run_admin(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let url = settings.database.url.expose_secret();
    let data_dir = &settings.server.data_dir;
    match command {
        AdminCommand::SeedUsers {
            count,
            prefix,
            out,
            role,
            password,
        } => {
            let request = SeedRequest {
                count,
                prefix,
                role,
                password,
            };
            seed_users(&settings, request, &out).await
        }
        AdminCommand::SetRole { user, role } => {
            let db = existing_db(&settings).await?;
            let changed = accounts::change(&Repos::new(&db), &user, Change::Role(role)).await?;
            report_change(&settings, &changed, &format!("role {}", role.as_str())).await;
            Ok(())
        }
        AdminCommand::Disable { user } => {
            let db = existing_db(&settings).await?;
            let changed = accounts::change(&Repos::new(&db), &user, Change::Disabled(true)).await?;
            report_change(&settings, &changed, "disabled").await;
            Ok(())
        }
        AdminCommand::Enable { user } => {
            let db = existing_db(&settings).await?;
            let changed =
                accounts::change(&Repos::new(&db), &user, Change::Disabled(false)).await?;
            report_change(&settings, &changed, "enabled").await;
            Ok(())
        }
        AdminCommand::ResetPassword { user, generate } => {
            let db = existing_db(&settings).await?;
            let account = accounts::find(&Repos::new(&db), &user).await?;
            let password = if generate {
                accounts::generate_password()
            } else {
                accounts::read_password(&account.username)?
            };
            let hasher = Hasher::new(&settings.auth).context("argon2 settings")?;
            let record =
                accounts::reset_password(&Repos::new(&db), &hasher, &account, password.clone())
                    .await?;
            if generate {
                println!("new password for {}: {password}", account.username);
            } else {
                println!(
                    "password of {} (id {}) changed",
                    account.username, account.id
                );
            }
            tell_nodes(&settings, &record).await;
            Ok(())
        }
        AdminCommand::Backup { out } => {
            match admin::backup::backup(url, data_dir, &out).await? {
                BackupDone::Sqlite { out, bytes } => {
                    println!(
                        "backed up the SQLite database to {} ({bytes} bytes)",
                        out.display()
                    );
                }
                BackupDone::PgDump { out, restore } => {
                    println!(
                        "ran pg_dump: {} holds the database (custom format); restore it, every \
                         node stopped, with:\n  {restore}",
                        out.display()
                    );
                }
            }
            Ok(())
        }
        AdminCommand::Restore { file } => {
            let done = admin::backup::restore(url, data_dir, &file).await?;
            println!(
                "restored {} into {} (migration {} of {}: the node applies any newer ones at start)",
                file.display(),
                done.db.display(),
                done.level.version,
                done.level.latest
            );
            if let Some(kept) = done.kept {
                println!("the database it replaced is kept at {}", kept.display());
            }
            Ok(())
        }
    }
}

/// The node's database, refusing to create an empty SQLite file where the operator probably
/// mistyped the data directory (every account would then be "unknown").
async fn existing_db(settings: &Settings) -> anyhow::Result<Db> {
    let file = settings.server.data_dir.join("corral.db");
    if settings.database.url.expose_secret().is_empty() && !file.is_file() {
        anyhow::bail!(
            "no database at {}: point --data-dir (or --config) at the node's data directory",
            file.display()
        );
    }
    let db = Db::connect(&settings.database, &settings.server.data_dir)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("running migrations")?;
    Ok(db)
}

/// Tells running nodes of `user`'s change: at once over the cluster bus when Redis is
/// configured, and says when the others (or all, alone) apply it from the database.
async fn tell_nodes(settings: &Settings, user: &UserRecord) {
    let refresh = match settings.auth.standing_refresh_ms {
        0 => "never (auth.standing_refresh_ms = 0): restart them".to_string(),
        ms => format!("within {ms} ms (auth.standing_refresh_ms)"),
    };
    if !settings.redis.url.expose_secret().is_empty() {
        let told = match RedisStore::connect(&settings.redis).await {
            Ok(redis) => accounts::announce(&redis, user).await,
            Err(err) => Err(accounts::AccountError::Announce(err)),
        };
        match told {
            Ok(nodes) => {
                println!(
                    "told {nodes} running node(s) over the cluster bus; any that missed it \
                     applies it {refresh}"
                );
                return;
            }
            Err(err) => eprintln!("warning: {}", report(&err).trim_start_matches("error: ")),
        }
    }
    println!(
        "tokens issued before stop working, and the account's sockets close, on running nodes \
         {refresh}"
    );
}

async fn report_change(settings: &Settings, changed: &accounts::Changed, what: &str) {
    let user = &changed.before;
    match &changed.after {
        None => println!(
            "{} (id {}) is already {what}: nothing changed",
            user.username, user.id
        ),
        Some(after) => {
            println!(
                "{} (id {}): role {} -> {}, {} -> {}",
                user.username,
                user.id,
                user.role.as_str(),
                after.role.as_str(),
                standing(user.disabled),
                standing(after.disabled)
            );
            tell_nodes(settings, after).await;
        }
    }
}

fn standing(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "enabled" }
}

async fn seed_users(settings: &Settings, request: SeedRequest, out: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let db = Db::connect(&settings.database, &settings.server.data_dir)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("running migrations")?;
    let key = secret::load_or_generate(&settings.auth.jwt_secret, &settings.server.data_dir)
        .context("loading the token signing key")?;
    let keys = Arc::new(JwtKeys::new(
        &key,
        &settings.auth.issuer,
        settings.auth.token_ttl_secs,
    ));
    let hasher = Hasher::new(&settings.auth).context("argon2 settings")?;
    let users = admin::seed_users(&db, &keys, &hasher, &request)
        .await
        .context("seeding users")?;
    let json = serde_json::to_vec(&users).context("encoding tokens")?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    tracing::info!(
        count = users.len(),
        out = %out.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded users"
    );
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_reported_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err = anyhow::Error::from(corral::startup::StartupError::Io(refused))
            .context("starting the server");
        let text = report(err.as_ref());
        assert_eq!(text.matches("Address already in use").count(), 1, "{text}");
        assert!(text.starts_with("error: starting the server\n"), "{text}");
        assert!(
            text.contains("caused by: io: Address already in use"),
            "{text}"
        );
    }
}
