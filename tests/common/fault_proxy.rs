//! A fault-injecting HTTP proxy on loopback, for S3 fault tests.
//!
//! It forwards every request to an upstream (the scenario's SeaweedFS)
//! unchanged, Host header included (SigV4 signs it, so the signature still
//! verifies), records every request it sees, and can be switched at runtime
//! to answer with a fault instead: see [`Mode`]. Accepted connections use a
//! zero linger, so a dropped connection is a TCP reset, not a clean close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// What the proxy does with the requests it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the upstream and relay its answer.
    Pass,
    /// 500 InternalError.
    InternalError,
    /// 503 SlowDown.
    SlowDown,
    /// 403 AccessDenied.
    AccessDenied,
    /// 404 NoSuchBucket.
    NoSuchBucket,
    /// 301 PermanentRedirect with `x-amz-bucket-region: <region>`.
    Redirect(String),
    /// Requests without a `continuation-token` pass (page 1 of every
    /// listing); a request for a later page gets its connection reset.
    ResetOnContinuation,
    /// As [`Mode::ResetOnContinuation`], but later pages get the upstream's
    /// status and headers (its `content-length` included) and half of the
    /// body, then, 300 ms later, a reset.
    CutBodyOnContinuation,
    /// Every listing (`list-type=`, Azure's `comp=list`) gets the upstream's
    /// status, headers and half of its body, then a reset: a listing cut
    /// mid-way on stores that answer in one page.
    CutEveryListing,
    /// Never answer (the request is held until the client goes away).
    Hang,
    /// The upstream's status and headers at once, then its body one byte per interval.
    Drip(Duration),
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method (`GET`, `HEAD`, ...).
    pub method: String,
    /// URI path (`/bucket/key`).
    pub path: String,
    /// Raw query string, `""` when none.
    pub query: String,
    /// When it arrived.
    pub at: Instant,
    /// The mode in force when it arrived.
    pub mode: Mode,
    /// When the proxy was done with it: answer sent, or the client went away
    /// (hyper dropped the handler or the body). `None` while in flight.
    pub ended: Option<Instant>,
}

struct State {
    mode: Mutex<Mode>,
    upstream: String,
    rewrite_host: bool,
    client: Client<HttpConnector, Full<Bytes>>,
    requests: Mutex<Vec<Recorded>>,
    connections_open: AtomicUsize,
    in_flight: AtomicUsize,
}

/// An open client connection; closed when dropped.
struct Open(Arc<State>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request in flight (index into `requests`); ended when dropped, i.e. when
/// the answer is complete or hyper dropped the handler or the body.
struct InFlight(Arc<State>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut r) = self.0.requests.lock() {
            r[self.1].ended = Some(Instant::now());
        }
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give the exporter.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        Self::start_with(upstream, false).await
    }

    /// As [`FaultProxy::start`]; with `rewrite_host` the Host header becomes
    /// the upstream's (fake-gcs-server routes its XML API by Host; only for
    /// stores whose requests do not sign the Host).
    pub async fn start_with(upstream: &str, rewrite_host: bool) -> Self {
        let upstream = upstream.trim_end_matches('/').to_string();
        assert!(
            upstream.starts_with("http://127.0.0.1:") || upstream.starts_with("http://localhost:"),
            "the fault proxy only forwards to loopback, not {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Pass),
            upstream,
            rewrite_host,
            client: Client::builder(TokioExecutor::new()).build_http(),
            requests: Mutex::new(Vec::new()),
            connections_open: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_zero_linger();
                let st = st.clone();
                tokio::spawn(async move {
                    st.connections_open.fetch_add(1, Ordering::SeqCst);
                    let _open = Open(st.clone());
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Switches the mode for the requests that arrive from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Client connections currently open (idle keep-alive ones included).
    pub fn connections_open(&self) -> usize {
        self.state.connections_open.load(Ordering::SeqCst)
    }

    /// Requests whose answer is not finished yet (held, dripping, or being forwarded).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>fault-proxy</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", "fault-proxy")
        .body(full(xml))
        .unwrap()
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn forward(state: &State, req: Request<Incoming>) -> Result<(hyper::http::response::Parts, Bytes), BoxError> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{pq}", state.upstream).parse()?;
    // The Host header stays as the client sent it (SigV4 signs it), unless asked.
    if state.rewrite_host
        && let Some(authority) = parts.uri.authority()
    {
        parts.headers.insert(hyper::header::HOST, authority.as_str().parse()?);
    }
    let resp = state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = resp.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let mode = state.mode.lock().unwrap().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let index = {
        let mut r = state.requests.lock().unwrap();
        r.push(Recorded {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: query.clone(),
            at: Instant::now(),
            mode: mode.clone(),
            ended: None,
        });
        r.len() - 1
    };
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(state.clone(), index);
    let later_page = query.split('&').any(|p| p.starts_with("continuation-token="));
    match mode {
        Mode::Pass => {
            let (parts, body) = forward(&state, req).await?;
            Ok(Response::from_parts(parts, full(body)))
        }
        Mode::InternalError => Ok(s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )),
        Mode::SlowDown => Ok(s3_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        )),
        Mode::AccessDenied => Ok(s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")),
        Mode::NoSuchBucket => Ok(s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        )),
        Mode::Redirect(region) => {
            let mut resp = s3_error(
                StatusCode::MOVED_PERMANENTLY,
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified endpoint. \
                 Please send all future requests to this endpoint.",
            );
            resp.headers_mut()
                .insert("x-amz-bucket-region", region.parse().unwrap());
            Ok(resp)
        }
        Mode::ResetOnContinuation if later_page => Err("fault proxy: reset on a later listing page".into()),
        Mode::ResetOnContinuation => {
            let (parts, body) = forward(&state, req).await?;
            Ok(Response::from_parts(parts, full(body)))
        }
        Mode::CutBodyOnContinuation | Mode::CutEveryListing => {
            let listing = query.contains("list-type=") || query.contains("comp=list");
            let cut = if mode == Mode::CutEveryListing {
                listing
            } else {
                later_page
            };
            let (parts, body) = forward(&state, req).await?;
            if !cut {
                return Ok(Response::from_parts(parts, full(body)));
            }
            let half = body.slice(..body.len() / 2);
            // Half the body, a pause so it reaches the client, then the reset.
            let frames = futures_util::stream::iter(vec![Ok(Frame::data(half))])
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Err::<Frame<Bytes>, BoxError>("fault proxy: body cut mid-way".into())
                }))
                .map(move |frame| {
                    let _ended_with_the_body = &guard;
                    frame
                });
            Ok(Response::from_parts(parts, BodyExt::boxed(StreamBody::new(frames))))
        }
        Mode::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Mode::Drip(every) => {
            let (parts, body) = forward(&state, req).await?;
            let frames = futures_util::stream::unfold((body, 0usize, guard), move |(body, i, guard)| async move {
                if i >= body.len() {
                    return None;
                }
                tokio::time::sleep(every).await;
                let frame = Ok::<_, BoxError>(Frame::data(body.slice(i..i + 1)));
                Some((frame, (body, i + 1, guard)))
            });
            Ok(Response::from_parts(parts, BodyExt::boxed(StreamBody::new(frames))))
        }
    }
}
