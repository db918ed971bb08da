//! The `Forwarded` header (RFC 7239): who sent the request to this proxy, over what.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::FORWARDED;
use http::uri::{Authority, Scheme};

use super::append_list_element;

/// One hop's element of a `Forwarded` header (RFC 7239 §4), built parameter by parameter.
///
/// A proxy appends one element per request it forwards, usually with `for` set to the client's
/// address (from [`ConnectionInfo`](crate::server::ConnectionInfo)), `proto` to the scheme it was
/// reached over, and `host` to the `Host` the client asked for. Unset parameters are left out.
///
/// ```
/// use http::{HeaderMap, uri::Scheme};
/// use mesh_core::proxy::ForwardedElement;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("forwarded", "for=192.0.2.60".parse().unwrap());
///
/// ForwardedElement::new()
///     .for_node("[2001:db8::17]:4711".parse::<std::net::SocketAddr>().unwrap())
///     .proto(Scheme::HTTPS)
///     .host("api.example.com".parse().unwrap())
///     .append_to(&mut headers);
///
/// assert_eq!(
///     headers["forwarded"],
///     r#"for=192.0.2.60, for="[2001:db8::17]:4711";proto=https;host=api.example.com"#,
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardedElement {
    for_node: Option<ForwardedNode>,
    by_node: Option<ForwardedNode>,
    proto: Option<Scheme>,
    host: Option<Authority>,
}

impl ForwardedElement {
    /// An element with no parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `for=`: the node that sent the request to this proxy.
    pub fn for_node(mut self, node: impl Into<ForwardedNode>) -> Self {
        self.for_node = Some(node.into());
        self
    }

    /// Sets `by=`: the interface this proxy received the request on.
    pub fn by_node(mut self, node: impl Into<ForwardedNode>) -> Self {
        self.by_node = Some(node.into());
        self
    }

    /// Sets `proto=`: the scheme the request was received over (`http` or `https`).
    pub fn proto(mut self, scheme: Scheme) -> Self {
        self.proto = Some(scheme);
        self
    }

    /// Sets `host=`: the `Host` the request was received with.
    pub fn host(mut self, host: Authority) -> Self {
        self.host = Some(host);
        self
    }

    /// Appends this element to `Forwarded`, after the elements of earlier hops.
    ///
    /// The element joins the last existing `Forwarded` field line (`, `-separated), so that readers
    /// which look at a single line still see the whole chain. Does nothing for an element without
    /// parameters, which the grammar does not allow.
    pub fn append_to(&self, headers: &mut HeaderMap) {
        let element = self.to_string();
        if !element.is_empty() {
            append_list_element(headers, FORWARDED, element.as_bytes());
        }
    }
}

impl std::fmt::Display for ForwardedElement {
    /// The element as it appears in the header, e.g. `for=192.0.2.43;proto=https`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(4);
        if let Some(node) = &self.for_node {
            pairs.push(("for", node.to_string()));
        }
        if let Some(node) = &self.by_node {
            pairs.push(("by", node.to_string()));
        }
        if let Some(proto) = &self.proto {
            pairs.push(("proto", proto.as_str().to_owned()));
        }
        if let Some(host) = &self.host {
            pairs.push(("host", host.as_str().to_owned()));
        }
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                f.write_char(';')?;
            }
            write!(f, "{name}=")?;
            write_token_or_quoted(f, value)?;
        }
        Ok(())
    }
}

/// A node in a `for=` or `by=` parameter (RFC 7239 §6): an IP address, optionally with a port, or
/// `unknown`.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack listener reports for IPv4
/// clients) are written as the IPv4 address they map. IPv6 addresses are bracketed and quoted, as
/// are addresses with a port: `for="[2001:db8::1]:443"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardedNode(Node);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    Socket(SocketAddr),
    Unknown,
}

impl ForwardedNode {
    /// The node `unknown`: the proxy does not know, or will not say, who sent the request.
    pub fn unknown() -> Self {
        Self(Node::Unknown)
    }
}

impl From<IpAddr> for ForwardedNode {
    fn from(ip: IpAddr) -> Self {
        Self(Node::Ip(ip))
    }
}

impl From<SocketAddr> for ForwardedNode {
    fn from(addr: SocketAddr) -> Self {
        Self(Node::Socket(addr))
    }
}

impl std::fmt::Display for ForwardedNode {
    /// The node unquoted, e.g. `[2001:db8::1]:443`; quoting is the element's business.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let write_ip = |f: &mut std::fmt::Formatter<'_>, ip: IpAddr| match ip.to_canonical() {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "[{v6}]"),
        };
        match self.0 {
            Node::Ip(ip) => write_ip(f, ip),
            Node::Socket(addr) => {
                write_ip(f, addr.ip())?;
                write!(f, ":{}", addr.port())
            }
            Node::Unknown => f.write_str("unknown"),
        }
    }
}

/// Writes `value` as a token if it is one, else as a quoted-string (RFC 9110 §5.6.2, §5.6.4).
fn write_token_or_quoted(f: &mut std::fmt::Formatter<'_>, value: &str) -> std::fmt::Result {
    if !value.is_empty() && value.bytes().all(is_tchar) {
        return f.write_str(value);
    }
    f.write_char('"')?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// RFC 9110 §5.6.2 `tchar`.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
