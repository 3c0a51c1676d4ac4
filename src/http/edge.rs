//! What every request passes before it reaches a route: who the client is (its address, behind
//! trusted proxies too, and whether it came over HTTPS), whether its `Origin` may act here,
//! whether a WebSocket still fits under the connection caps, and whether its session cookie
//! was revoked. Responses to HTTPS clients get HSTS.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::SignedCookieJar;

use super::ApiError;
use crate::accounts::{self, Caller};
use crate::config::{AllowedOrigin, Cidr, Config, RateLimits, normalize_origin};
use crate::identity;
use crate::state::AppState;

/// One year, the usual HSTS lifetime. No `includeSubDomains`: confab cannot know that every
/// sibling host speaks HTTPS.
const HSTS: &str = "max-age=31536000";

/// The TCP peer of a connection and whether it spoke TLS, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// The client's IP address: the TCP peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one of our proxies. Key per-IP limits on
/// [`ClientAddr::bucket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key one client is limited under: its IPv4 address, or its IPv6 /64 (one host
    /// usually holds a whole /64, so a finer key would be free to multiply).
    pub fn bucket(self) -> IpAddr {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Set by `guard` on every routed request; the fallback only serves a router driven
        // without a server (unit tests), where there is no peer to speak of.
        Ok(parts
            .extensions
            .get::<Self>()
            .copied()
            .unwrap_or(Self(IpAddr::from([127, 0, 0, 1]))))
    }
}

/// Whether the browser reached us over HTTPS (directly, or through a trusted proxy that says
/// so): cookies are then `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Secure(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Secure {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().copied().unwrap_or_default())
    }
}

/// The policy `guard` applies, built once from the configuration.
pub struct Edge {
    trusted_proxies: Vec<Cidr>,
    any_origin: bool,
    allowed_origins: Vec<String>,
    connections: Arc<Connections>,
    max_body_bytes: usize,
}

impl Edge {
    pub fn new(config: &Config) -> Self {
        let per_ip = match config.rate_limits {
            RateLimits::On => Some(config.max_connections_per_ip),
            RateLimits::Off => None,
        };
        Self {
            trusted_proxies: config.trusted_proxies.clone(),
            any_origin: config.allowed_origins.contains(&AllowedOrigin::Any),
            allowed_origins: config
                .allowed_origins
                .iter()
                .filter_map(|origin| match origin {
                    AllowedOrigin::Exactly(origin) => Some(origin.clone()),
                    AllowedOrigin::Any => None,
                })
                .collect(),
            connections: Arc::new(Connections {
                max_total: config.max_connections,
                max_per_ip: per_ip,
                held: Mutex::default(),
            }),
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// The client behind `peer`: walks `X-Forwarded-For` from the nearest hop outwards while
    /// the hops are our own proxies. A hop we cannot parse ends the walk at the proxy that
    /// wrote it, so a forged or garbled entry can never pick the address.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    fn origin_allowed(&self, origin: &HeaderValue, own: Option<&str>) -> bool {
        let Some(origin) = origin.to_str().ok().and_then(normalize_origin) else {
            return false; // `null`, or not an origin at all
        };
        self.any_origin
            || own.is_some_and(|own| own == origin)
            || self.allowed_origins.contains(&origin)
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The last value of a header a trusted proxy sets (the nearest proxy appends last).
fn forwarded<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// WebSocket connections held, in total and per client bucket. One std mutex guards both so
/// that a check and its increment are one step; it is held for a map lookup only.
struct Connections {
    max_total: u32,
    /// `None` when `--rate-limits off` lifts the per-IP cap.
    max_per_ip: Option<u32>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: u32,
    /// Only buckets holding at least one connection: the map shrinks as they close.
    by_ip: HashMap<IpAddr, u32>,
}

enum Refusal {
    ServerFull,
    PerIp,
}

impl Connections {
    fn admit(self: &Arc<Self>, client: ClientAddr) -> Result<ConnectionPermit, Refusal> {
        let bucket = client.bucket();
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.total >= self.max_total {
            return Err(Refusal::ServerFull);
        }
        let mine = held.by_ip.get(&bucket).copied().unwrap_or(0);
        if self.max_per_ip.is_some_and(|max| mine >= max) {
            return Err(Refusal::PerIp);
        }
        held.total += 1;
        held.by_ip.insert(bucket, mine + 1);
        Ok(ConnectionPermit(Arc::new(PermitInner {
            connections: self.clone(),
            bucket,
        })))
    }

    fn release(&self, bucket: IpAddr) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_ip.get_mut(&bucket) {
            *count -= 1;
            if *count == 0 {
                held.by_ip.remove(&bucket);
            }
        }
    }
}

/// One WebSocket connection's place under the caps, given to the `/ws` handler in the request's
/// extensions. The place is released when the last clone drops: keep one for the whole session.
#[derive(Clone)]
pub struct ConnectionPermit(#[allow(dead_code)] Arc<PermitInner>);

struct PermitInner {
    connections: Arc<Connections>,
    bucket: IpAddr,
}

impl Drop for PermitInner {
    fn drop(&mut self) {
        self.connections.release(self.bucket);
    }
}

/// What `guard` needs: the policy and the shared state (for the key and the store).
#[derive(Clone)]
pub struct Guard {
    pub edge: Arc<Edge>,
    pub app: AppState,
}

/// The middleware: see the module documentation for what it checks, in that order.
pub async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let Guard { edge, app } = guard;
    let peer = request.extensions().get::<Peer>().copied();
    let headers = request.headers();
    let peer_ip = peer.map_or(IpAddr::from([127, 0, 0, 1]), |peer| peer.addr.ip());
    let via_proxy = edge.trusts(peer_ip.to_canonical());
    let client = ClientAddr(edge.client(peer_ip, headers));
    let secure = peer.is_some_and(|peer| peer.tls)
        || (via_proxy
            && forwarded(headers, "x-forwarded-proto")
                .is_some_and(|proto| proto.eq_ignore_ascii_case("https")));
    let host = via_proxy
        .then(|| forwarded(headers, "x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    let scheme = if secure { "https" } else { "http" };
    let own_origin = host.and_then(|host| normalize_origin(&format!("{scheme}://{host}")));

    let path = request.uri().path();
    let is_ws = path == "/ws";
    let is_api = path.starts_with("/api/");
    let changes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if (is_ws || (is_api && changes))
        && let Some(origin) = headers.get(header::ORIGIN)
        && !edge.origin_allowed(origin, own_origin.as_deref())
    {
        tracing::info!(?origin, client = %client.0, "refused a cross-origin request");
        return with_hsts(ApiError::ForbiddenOrigin.into_response(), secure);
    }
    if is_ws || is_api {
        match caller(&app, request.headers_mut()).await {
            Ok(Some(caller)) => {
                request.extensions_mut().insert(caller);
            }
            Ok(None) => {}
            Err(response) => return with_hsts(response, secure),
        }
    }
    if is_ws {
        match edge.connections.admit(client) {
            Ok(permit) => {
                request.extensions_mut().insert(permit);
            }
            Err(Refusal::ServerFull) => {
                return with_hsts(ApiError::ServerFull.into_response(), secure);
            }
            Err(Refusal::PerIp) => {
                return with_hsts(ApiError::TooManyConnections.into_response(), secure);
            }
        }
    }
    request.extensions_mut().insert(client);
    request.extensions_mut().insert(Secure(secure));
    with_hsts(next.run(request).await, secure)
}

fn with_hsts(mut response: Response, secure: bool) -> Response {
    if secure {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// The caller the session cookie names, if its session is live; a cookie naming a dead one
/// (signed out, revoked on any node, expired) is removed from the request, so that every
/// route sees a client without a session. Asking the store each time keeps revocation exact
/// on every node; it is one indexed lookup, and only for `/api/*` and `/ws` requests with a
/// cookie.
async fn caller(app: &AppState, headers: &mut HeaderMap) -> Result<Option<Caller>, Response> {
    let jar = SignedCookieJar::from_headers(headers, app.key.clone());
    let Some(session) = identity::session_from(&jar) else {
        return Ok(None);
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    match accounts::resolve(app.store.as_ref(), session, user_agent).await {
        Ok(Some(caller)) => Ok(Some(caller)),
        Ok(None) => {
            strip_cookie(headers, identity::COOKIE);
            Ok(None)
        }
        Err(error) => Err(ApiError::Unavailable(error).into_response()),
    }
}

fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| pair.split('=').next().map(str::trim) != Some(name) && !pair.is_empty())
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn edge(args: &[&str]) -> Edge {
        let config =
            Config::try_parse_from(std::iter::once("confab").chain(args.iter().copied())).unwrap();
        Edge::new(&config)
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let open = edge(&[]);
        assert_eq!(open.client(proxy, &xff("1.2.3.4")), proxy);
        let trusting = edge(&["--trusted-proxies", "10.0.0.0/8"]);
        assert_eq!(
            trusting.client(proxy, &xff("1.2.3.4")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // A client cannot pick its address by prepending one: the nearest untrusted hop wins.
        assert_eq!(
            trusting.client(proxy, &xff("6.6.6.6, 1.2.3.4, 10.0.0.9")),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // Garbage ends the walk at the proxy that passed it on.
        assert_eq!(trusting.client(proxy, &xff("1.2.3.4, garbage")), proxy);
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(trusting.client(stranger, &xff("1.2.3.4")), stranger);
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a = ClientAddr("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddr("2001:db8:1:2:bbbb::7".parse().unwrap());
        let c = ClientAddr("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.bucket(), b.bucket());
        assert_ne!(a.bucket(), c.bucket());
        let v4 = ClientAddr("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(v4.bucket(), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn permits_count_until_their_last_clone_drops() {
        let edge = edge(&["--max-connections", "3", "--max-connections-per-ip", "2"]);
        let one = ClientAddr("192.0.2.1".parse().unwrap());
        let two = ClientAddr("192.0.2.2".parse().unwrap());
        let first = edge.connections.admit(one).ok().unwrap();
        let copy = first.clone();
        let _second = edge.connections.admit(one).ok().unwrap();
        assert!(matches!(edge.connections.admit(one), Err(Refusal::PerIp)));
        let _third = edge.connections.admit(two).ok().unwrap();
        assert!(matches!(
            edge.connections.admit(two),
            Err(Refusal::ServerFull)
        ));
        drop(first);
        assert!(matches!(
            edge.connections.admit(two),
            Err(Refusal::ServerFull)
        ));
        drop(copy);
        assert!(edge.connections.admit(one).is_ok());
    }

    #[test]
    fn only_the_session_cookie_is_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; confab_session=xyz; b=2"),
        );
        strip_cookie(&mut headers, "confab_session");
        assert_eq!(headers[header::COOKIE], "a=1; b=2");
        strip_cookie(&mut headers, "a");
        strip_cookie(&mut headers, "b");
        assert!(headers.get(header::COOKIE).is_none());
    }
}
