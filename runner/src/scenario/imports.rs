//! What a component may import. The host grants WASI preview 2's core interfaces (which the sandbox
//! then leaves empty: no files, network, environment or real clock) and `runner:scenario/host` at this
//! host's version; a component asking for anything else (wasi:http, another package) is refused at load
//! with the list of what it asked for, and one built against another version of the contract is
//! refused naming both versions.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::{WIT_PACKAGE, WIT_VERSION};

/// WASI packages the host links (`wasmtime_wasi::p2::add_to_linker_sync`).
const GRANTED_WASI: &[&str] =
    &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/", "wasi:sockets/"];

pub(super) fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    check_wit_version(engine, component)?;
    let ty = component.component_type();
    let host_interface = format!("{WIT_PACKAGE}/host@{WIT_VERSION}");
    let types_interface = format!("{WIT_PACKAGE}/types@{WIT_VERSION}");
    let refused: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| {
            *name != host_interface
                && *name != types_interface
                && !GRANTED_WASI.iter().any(|prefix| name.starts_with(prefix))
        })
        .map(str::to_string)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "it imports interfaces this host does not grant: {}; a scenario may import only {host_interface} and \
         WASI preview 2 (wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem, wasi:sockets)",
        refused.join(", ")
    ))
}

/// Refuses components built against another version of `runner:scenario`, naming both versions.
fn check_wit_version(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let names = ty.imports(engine).map(|(name, _)| name).chain(
        ty.exports(engine)
            .filter_map(|(name, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)).then_some(name)),
    );
    for name in names {
        let Some(rest) = name.strip_prefix(WIT_PACKAGE).and_then(|rest| rest.strip_prefix('/')) else { continue };
        let version = rest.split_once('@').map_or("(none)", |(_, version)| version);
        if version != WIT_VERSION {
            return Err(format!(
                "it was built against {WIT_PACKAGE}@{version}, but this runner hosts {WIT_PACKAGE}@{WIT_VERSION}; \
                 rebuild the scenario against this runner's wit/scenario.wit"
            ));
        }
    }
    Ok(())
}
