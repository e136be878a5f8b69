//! Configuration text -> model: the keepalived and ldirectord parsers, the model they
//! share, byte spans and located diagnostics.

pub mod diagnostic;
pub mod keepalived;
pub mod ldirectord;
pub mod model;
pub mod read;
pub mod span;

pub use diagnostic::{Diagnostic, Location, Severity};
pub use model::{
    ExistingCheck, Format, ForwardingMethod, InsertionPoint, Origin, Protocol, RealServer,
    ServiceKey, Tunnel, TunnelChecksum, TunnelType, VirtualService,
};
pub use read::{read_config_file, MAX_FILE_SIZE};
pub use span::{FileId, SourceMap, Span};

use std::path::Path;

/// Guesses the format from a file name: `*.cf` or a name containing `ldirectord` is
/// ldirectord, `*.conf` or a name containing `keepalived` is keepalived.
pub fn detect_format(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.contains("ldirectord") || name.ends_with(".cf") {
        Some(Format::Ldirectord)
    } else if name.contains("keepalived") || name.ends_with(".conf") {
        Some(Format::Keepalived)
    } else {
        None
    }
}

/// A configuration of either format, read for what it says on this node.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub format: Format,
    pub sources: SourceMap,
    pub services: Vec<VirtualService>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads `path` (and its includes) in `format`; `config_id` is keepalived's `-i`.
pub fn load(path: &Path, format: Format, config_id: Option<String>) -> Result<Loaded, Diagnostic> {
    match format {
        Format::Keepalived => {
            let doc = keepalived::parse_file(path, &keepalived::ParseOptions { config_id })?;
            Ok(Loaded {
                format,
                sources: doc.sources,
                services: doc.services,
                warnings: doc.warnings,
            })
        }
        Format::Ldirectord => {
            let doc = ldirectord::parse_file(path)?;
            Ok(Loaded {
                format,
                sources: doc.sources,
                services: doc.services,
                warnings: doc.warnings,
            })
        }
    }
}

/// Every VIP or real server of a DR/TUN service that no probe can check (see
/// [`VirtualService::target_problems`]), as located errors; `Ok` when there is none.
pub fn check_targets(
    services: &[VirtualService],
    sources: &SourceMap,
) -> Result<(), Vec<Diagnostic>> {
    let errors: Vec<Diagnostic> = services
        .iter()
        .flat_map(VirtualService::target_problems)
        .map(|p| {
            Diagnostic::error(p.message)
                .at(sources, p.span)
                .with_hint(p.hint)
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
