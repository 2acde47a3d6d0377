//! Requests from other devices as values: an [`IncomingRequest`] the app accepts or rejects
//! from wherever it is, and the stream of them an ability receives
//! ([`AbilityConnectionManager::incoming`]), the other form of its `onCollaborate` handler.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::mpsc;

use super::manager::AbilityConnectionManager;
use super::session::Session;
use crate::error::AcmError;
use crate::events::EventStream;
use crate::runtime::app::AppInner;
use crate::types::{
    CollaborateHandler, CollaborateRequest, CollaborateResult, ConnectOptions, Context, PeerInfo,
};

/// How many requests wait in a stream of them before the next ones are rejected at once: a
/// peer's requests come as fast as it sends them, an app reads them as fast as it can.
const WAITING_REQUESTS: usize = 64;

/// The reason requesters get when their request is not answered (it was dropped).
const DROPPED: &str = "the app dropped the request without answering it";

/// A request from an app on another device for one of this app's abilities, waiting for its
/// answer: [`IncomingRequest::accept`] or [`IncomingRequest::reject`], from any task, once.
/// Dropped unanswered, it is rejected (PEER_APP_REJECTED), so that the requester does not wait
/// for the handshake timeout.
#[derive(Debug)]
pub struct IncomingRequest {
    manager: AbilityConnectionManager,
    request: CollaborateRequest,
    /// Set once answered, or handed back unanswered.
    answered: bool,
}

impl IncomingRequest {
    /// The request `request` of the handler form (`register_ability`), as a value to answer.
    pub fn new(manager: &AbilityConnectionManager, request: CollaborateRequest) -> Self {
        Self {
            manager: manager.clone(),
            request,
            answered: false,
        }
    }

    /// The requesting app; its `service_name` names the service.
    pub fn peer_info(&self) -> &PeerInfo {
        &self.request.peer_info
    }

    /// The requester's options.
    pub fn connect_options(&self) -> &ConnectOptions {
        &self.request.connect_options
    }

    /// The request's token, for [`AbilityConnectionManager::accept_connect`] and
    /// [`AbilityConnectionManager::reject`].
    pub fn token(&self) -> &str {
        &self.request.token
    }

    /// Accepts the request: creates this app's session for the requester and its service as
    /// `context`'s ability, takes its event stream, and accepts
    /// ([`AbilityConnectionManager::accept_connect`]). The stream, taken before the session is
    /// connected, begins with its `connect` event. Errors: those of
    /// [`AbilityConnectionManager::create_session`] (the request is then rejected, as dropped)
    /// and of `accept_connect` (the requester gave up, or its link ended).
    pub fn accept(mut self, context: &Context) -> Result<(Session, EventStream), AcmError> {
        let peer = self.request.peer_info.clone();
        let service = peer.service_name.clone();
        let options = self.request.connect_options.clone();
        let session = self
            .manager
            .create_session(&service, context, peer, options)?;
        let events = session.events()?;
        self.answered = true;
        // Settled at once: the future only tells how it went.
        let accepted = self
            .manager
            .accept_connect(session.id(), &self.request.token);
        accepted.into_inner()?;
        Ok((session, events))
    }

    /// Rejects the request; the requester gets PEER_APP_REJECTED with `reason`
    /// ([`AbilityConnectionManager::reject`]).
    pub fn reject(mut self, reason: &str) -> Result<(), AcmError> {
        self.answered = true;
        self.manager.reject(&self.request.token, reason)
    }

    /// The request as the handler form has it, unanswered: answer it with its token.
    pub fn into_request(mut self) -> CollaborateRequest {
        self.answered = true;
        std::mem::replace(
            &mut self.request,
            CollaborateRequest {
                peer_info: PeerInfo::default(),
                connect_options: ConnectOptions::default(),
                token: String::new(),
            },
        )
    }
}

impl Drop for IncomingRequest {
    fn drop(&mut self) {
        if !self.answered {
            // Answered already by its token, or withdrawn, if this fails.
            let _ = self.manager.reject(&self.request.token, DROPPED);
        }
    }
}

impl AbilityConnectionManager {
    /// The requests for the ability `module_name`/`ability_name` of this app, as a stream: the
    /// other form of [`register_ability`](Self::register_ability), whose handler it registers
    /// (replacing the ability's handler, as a later registration replaces it; the stream then
    /// ends). While 64 requests wait unread, the next ones are rejected at once. Dropping the
    /// stream unregisters the ability (requesters then get PEER_ABILITY_NO_ONCOLLABORATE) and
    /// rejects the requests still waiting in it.
    ///
    /// The stream holds no strong reference to the app: the app ends when its last manager
    /// goes, and the stream with it.
    pub fn incoming(&self, module_name: &str, ability_name: &str) -> IncomingRequests {
        let (tx, rx) = mpsc::channel(WAITING_REQUESTS);
        let app = Arc::downgrade(&self.app);
        let handler: CollaborateHandler = Arc::new(move |request| {
            let Some(app) = app.upgrade() else {
                return reject("the app has ended");
            };
            let incoming = IncomingRequest::new(&AbilityConnectionManager { app }, request);
            match tx.try_send(incoming) {
                Ok(()) => CollaborateResult::Accept,
                Err(err) => {
                    // Answered by what this handler returns.
                    let busy = matches!(err, mpsc::error::TrySendError::Full(_));
                    let mut unanswered = err.into_inner();
                    unanswered.answered = true;
                    reject(if busy {
                        "the app has too many requests waiting"
                    } else {
                        "the app no longer takes requests"
                    })
                }
            }
        });
        let registered = Arc::downgrade(&handler);
        self.app.register(module_name, ability_name, handler);
        IncomingRequests {
            rx,
            app: Arc::downgrade(&self.app),
            module: module_name.to_owned(),
            ability: ability_name.to_owned(),
            handler: registered,
        }
    }
}

fn reject(reason: &str) -> CollaborateResult {
    CollaborateResult::Reject {
        reason: reason.to_owned(),
    }
}

/// The requests for one ability, from [`AbilityConnectionManager::incoming`]: an async stream
/// (`futures_core::Stream`), or one at a time with [`IncomingRequests::next`].
pub struct IncomingRequests {
    rx: mpsc::Receiver<IncomingRequest>,
    app: Weak<AppInner>,
    module: String,
    ability: String,
    /// The handler this stream registered, to unregister only it (it holds the sending end:
    /// once it is gone, the stream ends).
    handler: Weak<dyn Fn(CollaborateRequest) -> CollaborateResult + Send + Sync>,
}

impl std::fmt::Debug for IncomingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequests")
            .field("module", &self.module)
            .field("ability", &self.ability)
            .finish_non_exhaustive()
    }
}

impl IncomingRequests {
    /// The next request; `None` once another handler replaced this stream's, the device shut
    /// down, or the app ended.
    pub async fn next(&mut self) -> Option<IncomingRequest> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for IncomingRequests {
    type Item = IncomingRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for IncomingRequests {
    fn drop(&mut self) {
        if let (Some(app), Some(handler)) = (self.app.upgrade(), self.handler.upgrade()) {
            app.unregister(&self.module, &self.ability, Some(&handler));
        }
        // The requests still waiting are rejected as they are dropped.
        self.rx.close();
        while let Ok(request) = self.rx.try_recv() {
            drop(request);
        }
    }
}
