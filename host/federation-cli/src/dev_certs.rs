//! `dev-certs DIR`: everything a TLS + token (or mTLS) quick start needs, made fresh:
//! a CA, a server certificate for `localhost` and `127.0.0.1`, a client certificate
//! naming the principal, a random token and an auth file mapping both to the principal;
//! then the exact serve and call flags. For development: the CA key is not kept.

use std::{fs::OpenOptions, io::Write, path::Path};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ring::rand::SecureRandom;
use sha2::{Digest, Sha256};

use crate::cli::DevCertsArgs;

/// The files `dev-certs` writes, as PEM (and the token and the auth file).
pub struct DevCerts {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub token: String,
    pub auth_file: String,
}

/// Makes a fresh set for `principal`.
pub fn generate(principal: &str) -> anyhow::Result<DevCerts> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "agent-federation development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, principal);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &issuer)?;

    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let token = hex::encode(bytes);
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let auth_file = format!(
        "# Callers of the host (agent-federation serve --auth-file). Written by dev-certs.\n\
         [[principal]]\n\
         name = \"{principal}\"\n\
         # sha256 of the token in the file `token` (printf %s \"$TOKEN\" | sha256sum)\n\
         token_sha256 = [\"{digest}\"]\n\
         # the client certificate's subject CN (mTLS)\n\
         client_identity = [\"{principal}\"]\n"
    );
    Ok(DevCerts {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
        token,
        auth_file,
    })
}

/// `dev-certs`: writes the set into the directory and prints how to use it.
pub fn write(args: &DevCertsArgs) -> anyhow::Result<()> {
    if !federation_host::principal_name_is_valid(&args.principal) {
        anyhow::bail!(
            "--principal {:?} must be 1..128 of [A-Za-z0-9._@:/-]",
            args.principal
        );
    }
    let certs = generate(&args.principal)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text, secret) in [
        ("ca.pem", &certs.ca, false),
        ("server.pem", &certs.server_cert, false),
        ("server-key.pem", &certs.server_key, true),
        ("client.pem", &certs.client_cert, false),
        ("client-key.pem", &certs.client_key, true),
        ("token", &certs.token, true),
        ("auth.toml", &certs.auth_file, false),
    ] {
        write_new(&dir.join(name), text, secret)?;
    }
    let d = dir.display();
    println!(
        "wrote {d}: ca.pem, server.pem, server-key.pem, client.pem, client-key.pem, token, auth.toml"
    );
    println!();
    println!("TLS + token:");
    println!(
        "  agent-federation serve --tls-cert {d}/server.pem --tls-key {d}/server-key.pem --auth-file {d}/auth.toml"
    );
    println!(
        "  agent-federation call --addr https://127.0.0.1:50075 --tls-ca {d}/ca.pem --token-file {d}/token --backend crewai --goal \"…\""
    );
    println!();
    println!("mTLS (every connection shows a client certificate; it names the principal):");
    println!(
        "  agent-federation serve --tls-cert {d}/server.pem --tls-key {d}/server-key.pem --tls-client-ca {d}/ca.pem --auth-file {d}/auth.toml"
    );
    println!(
        "  agent-federation call --addr https://127.0.0.1:50075 --tls-ca {d}/ca.pem --tls-cert {d}/client.pem --tls-key {d}/client-key.pem --backend crewai --goal \"…\""
    );
    println!();
    println!("or set once for every client command:");
    println!(
        "  export FEDERATION_ADDR=https://127.0.0.1:50075 FEDERATION_TLS_CA={d}/ca.pem FEDERATION_TOKEN_FILE={d}/token"
    );
    Ok(())
}

/// Creates `path` (never overwriting), mode 0600 for a secret.
fn write_new(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
