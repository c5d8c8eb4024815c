//! ed25519 key files in `<home>/keys/<name>.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use clearnode_types::Address;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// A stored key.
#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    name: String,
    public_key: String,
    address: String,
    secret_key: String,
}

/// Key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key.
    Generate(KeyArgs),
    /// Print a key's public key and address.
    Show(KeyArgs),
    /// List the keys in the home.
    List(HomeArgs),
}

/// A named key in a home.
#[derive(Args)]
pub struct KeyArgs {
    /// Key name.
    pub name: String,
    /// Node home.
    #[arg(long, default_value_os_t = crate::default_home())]
    pub home: PathBuf,
}

/// A home.
#[derive(Args)]
pub struct HomeArgs {
    /// Node home.
    #[arg(long, default_value_os_t = crate::default_home())]
    pub home: PathBuf,
}

fn key_path(home: &Path, name: &str) -> PathBuf {
    home.join("keys").join(format!("{name}.json"))
}

/// Generates and stores a key; fails if it exists.
pub fn generate(home: &Path, name: &str) -> Result<SigningKey> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        bail!("key name {name:?}: use letters, digits, - _ .");
    }
    let path = key_path(home, name);
    if path.exists() {
        bail!("key {name} already exists at {}", path.display());
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let public = key.verifying_key().to_bytes();
    let file = KeyFile {
        name: name.to_string(),
        public_key: hex::encode(public),
        address: Address::of_public_key(&public).to_hex(),
        secret_key: hex::encode(key.to_bytes()),
    };
    std::fs::create_dir_all(home.join("keys"))?;
    std::fs::write(&path, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("writing {}", path.display()))?;
    restrict_permissions(&path)?;
    Ok(key)
}

fn restrict_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// Loads a stored key.
pub fn load(home: &Path, name: &str) -> Result<SigningKey> {
    let path = key_path(home, name);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading key {name} at {}: create it with `clearnode keys generate {name}`",
            path.display()
        )
    })?;
    let file: KeyFile =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let secret = hex::decode(&file.secret_key).context("secret_key is not hex")?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("secret_key of {name} is not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// The address of a key.
pub fn address(key: &SigningKey) -> Address {
    Address::of_public_key(&key.verifying_key().to_bytes())
}

/// Runs a keys command.
pub fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate(args) => {
            let key = generate(&args.home, &args.name)?;
            print_key(&args.name, &key);
        }
        KeysCommand::Show(args) => print_key(&args.name, &load(&args.home, &args.name)?),
        KeysCommand::List(args) => {
            let dir = args.home.join("keys");
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .with_context(|| format!("listing {}", dir.display()))?
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect();
            names.sort();
            for name in names {
                print_key(&name, &load(&args.home, &name)?);
            }
        }
    }
    Ok(())
}

fn print_key(name: &str, key: &SigningKey) {
    println!(
        "{name}\tpublic_key={}\taddress={}",
        hex::encode(key.verifying_key().to_bytes()),
        address(key)
    );
}
