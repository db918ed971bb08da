//! CDS `transport_socket` → the SPIFFE IDs a cluster's endpoints are expected to present.
//!
//! Istio (and other SPIFFE meshes) tell each client which workload identities may serve a
//! cluster through the upstream TLS context's subject-alternative-name matchers: a URI SAN that
//! must equal `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. We read exactly
//! that; certificates, keys and trust bundles come from mesh-tls's own sources (SDS is not read),
//! and every other matcher is named in [`ClusterPolicy::ignored`](crate::ClusterPolicy::ignored).

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use mesh_core::Identity;
use prost::{Message, Name};

/// The transport socket name of Envoy's TLS socket.
pub(crate) const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// The expected SPIFFE IDs of a cluster whose `transport_socket` is `socket`, in the order the
/// control plane listed them, without repeats.
///
/// Unsupported parts are pushed onto `ignored`; an error is the reason the cluster is invalid
/// (NACK): a TLS socket whose `typed_config` is not an `UpstreamTlsContext` or does not decode,
/// or an exact URI matcher whose value is not a SPIFFE ID.
pub(crate) fn expected_identities(
    socket: &TransportSocket,
    ignored: &mut Vec<&'static str>,
) -> Result<Vec<String>, String> {
    if socket.name != TLS_SOCKET {
        ignored.push("transport_socket (not envoy.transport_sockets.tls)");
        return Ok(Vec::new());
    }
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        return Err(format!("transport_socket {TLS_SOCKET} has no typed_config"));
    };
    let expected = UpstreamTlsContext::type_url();
    if any.type_url != expected {
        return Err(format!(
            "transport_socket.typed_config is {}, expected {expected}",
            any.type_url
        ));
    }
    let context = UpstreamTlsContext::decode(any.value.as_slice()).map_err(|e| {
        format!("transport_socket.typed_config does not decode as UpstreamTlsContext: {e}")
    })?;
    let validation = match context
        .common_tls_context
        .as_ref()
        .and_then(|c| c.validation_context_type.as_ref())
    {
        Some(ValidationContextType::ValidationContext(v)) => Some(v),
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            c.default_validation_context.as_ref()
        }
        _ => None,
    };
    match validation {
        Some(v) => sans(v, ignored),
        None => Ok(Vec::new()),
    }
}

/// The exact URI SANs of a validation context: `match_typed_subject_alt_names` when set, else
/// the older `match_subject_alt_names` (whose matchers apply to every SAN type; Istio lists
/// SPIFFE URIs there).
// The older field is deprecated in Envoy's API but still sent (Istio fills it), so it is read.
#[allow(deprecated)]
fn sans(
    validation: &CertificateValidationContext,
    ignored: &mut Vec<&'static str>,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let typed = &validation.match_typed_subject_alt_names;
    let matchers: Vec<&StringMatcher> = if typed.is_empty() {
        validation.match_subject_alt_names.iter().collect()
    } else {
        if !validation.match_subject_alt_names.is_empty() {
            // Envoy itself ignores the older field when the typed one is set.
            ignored.push("match_subject_alt_names (match_typed_subject_alt_names is set)");
        }
        let mut uris = Vec::new();
        for m in typed {
            match (SanType::try_from(m.san_type), &m.matcher) {
                (Ok(SanType::Uri), Some(matcher)) => uris.push(matcher),
                _ => ignored.push("match_typed_subject_alt_names (a SAN type other than URI)"),
            }
        }
        uris
    };
    for matcher in matchers {
        match &matcher.match_pattern {
            Some(MatchPattern::Exact(id)) if !matcher.ignore_case && is_spiffe(id) => {
                Identity::new(id).map_err(|e| format!("subject alt name {id:?}: {e}"))?;
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            Some(MatchPattern::Exact(_)) if !matcher.ignore_case => {
                ignored.push("subject alt name (not a SPIFFE ID)");
            }
            _ => ignored.push("subject alt name matcher (not an exact, case-sensitive match)"),
        }
    }
    Ok(ids)
}

/// Whether `san` claims to be a SPIFFE ID (its scheme is case-insensitive): such a value must
/// then be a valid one.
fn is_spiffe(san: &str) -> bool {
    san.get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("spiffe://"))
}
