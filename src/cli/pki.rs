//! The development PKI's commands: `pki init`, `pki issue-carrier`, `pki revoke`.

use std::process::ExitCode;

use anyhow::Result;

use super::PkiCommand;
use crate::pki;

pub(super) fn run(command: PkiCommand) -> Result<ExitCode> {
    match command {
        PkiCommand::Init {
            dir,
            gateway_id,
            hosts,
        } => {
            pki::init(&dir, &gateway_id, &hosts)?;
            println!("development PKI created in {}", dir.display());
            println!(
                "the CA private keys are in {} (0700), apart from the gateway's runtime files; \
                 `pki issue-carrier` and `pki revoke` use them. Outside development, keep CA \
                 keys off the machines that run gateways",
                dir.join(pki::CA_DIR).display()
            );
        }
        PkiCommand::IssueCarrier { eori, dir } => {
            if crate::ids::Eori::parse(&eori).is_none() {
                anyhow::bail!("{eori:?} is not an EORI number");
            }
            let issued = pki::issue_carrier(&dir, &eori)?;
            println!(
                "{}",
                serde_json::json!({
                    "eori": eori,
                    "cert": issued.cert.display().to_string(),
                    "key": issued.key.display().to_string(),
                    "serial": issued.serial,
                    "valid_days": pki::LEAF_DAYS,
                })
            );
        }
        PkiCommand::Revoke { serial, dir } => {
            let count = pki::revoke(&dir, &serial)?;
            println!(
                "revoked {serial}; {} lists {count} revoked certificate(s)",
                dir.join(pki::CARRIER_CRL).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
