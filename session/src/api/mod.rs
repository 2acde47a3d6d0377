//! The `abilityConnectionManager` API: sessions, connect / accept / reject / disconnect,
//! messages, data, and events, with the reference's types and error codes. A façade over the
//! runtime: argument checks and the reference's error codes.
//!
//! It comes in two forms over one implementation. The reference's functions keep their names
//! on [`AbilityConnectionManager`] and take session ids; the Rust-shaped core wraps them in
//! values the app owns: a [`Session`] (each method is one call of the reference's function
//! with its id, and dropping it destroys the session) and an [`IncomingRequest`] (accepting it
//! is `create_ability_connection_session` and `accept_connect` with its token). The two mix:
//! [`Session::id`] and [`AbilityConnectionManager::session`] go from one to the other.
//!
//! | reference (ArkTS) | reference's names in Rust | Rust-shaped core |
//! |---|---|---|
//! | `createAbilityConnectionSession(serviceName, context, peerInfo, connectOptions): number` | [`create_ability_connection_session`](AbilityConnectionManager::create_ability_connection_session)`(..) -> SessionId` | [`create_session`](AbilityConnectionManager::create_session)`(..) -> Session` |
//! | `destroyAbilityConnectionSession(sessionId)` | [`destroy_ability_connection_session`](AbilityConnectionManager::destroy_ability_connection_session)`(id)` | `drop(session)` |
//! | `getPeerInfoById(sessionId): PeerInfo \| undefined` | [`get_peer_info_by_id`](AbilityConnectionManager::get_peer_info_by_id)`(id) -> Option<PeerInfo>` | [`session.peer_info()`](Session::peer_info) |
//! | `connect(sessionId): Promise<ConnectResult>` | [`connect`](AbilityConnectionManager::connect)`(id).await -> Result<ConnectResult, _>` | [`session.connect().await`](Session::connect)` -> Result<(), ConnectError>` |
//! | `ConnectResult { isConnected, errorCode, reason }` | [`ConnectResult`] | `Ok(())` or [`ConnectError`]` { code, reason }` ([`ConnectResult::into_result`]) |
//! | `onCollaborate(wantParam)` of the UIAbility | [`register_ability`](AbilityConnectionManager::register_ability)`(module, ability, handler)`, handed a [`CollaborateRequest`] | [`incoming`](AbilityConnectionManager::incoming)`(module, ability)`: a stream of [`IncomingRequest`] ([`IncomingRequest::new`] wraps a handler's) |
//! | `acceptConnect(sessionId, token): Promise<void>` | [`accept_connect`](AbilityConnectionManager::accept_connect)`(id, token)` | [`request.accept(&context)`](IncomingRequest::accept)` -> (Session, EventStream)` |
//! | `reject(token, reason)` | [`reject`](AbilityConnectionManager::reject)`(token, reason)` | [`request.reject(reason)`](IncomingRequest::reject), or dropping it |
//! | `disconnect(sessionId)` | [`disconnect`](AbilityConnectionManager::disconnect)`(id)` | [`session.disconnect()`](Session::disconnect) |
//! | `sendMessage(sessionId, msg): Promise<void>` | [`send_message`](AbilityConnectionManager::send_message)`(id, msg).await` | [`session.send_message(msg).await`](Session::send_message) |
//! | `sendData(sessionId, data): Promise<void>` | [`send_data`](AbilityConnectionManager::send_data)`(id, bytes).await` | [`session.send_data(bytes).await`](Session::send_data) |
//! | `on`/`off('connect' \| 'disconnect' \| 'receiveMessage' \| 'receiveData' \| 'collaborateEvent', sessionId, callback)` | [`on`](AbilityConnectionManager::on)/[`off`](AbilityConnectionManager::off)`(EventType, id, Callback)` | [`session.events()`](Session::events): a stream of [`Event`] |
//! | `EventCallbackInfo { sessionId, reason, msg, data }` | [`EventCallbackInfo`] ([`Event::callback_info`]) | [`Event`], one variant per event |
//! | `sessionId: number` | [`SessionId`] ([`SessionId::get`] is the number) | [`Session`] |
//! | `BusinessError` with code 201, 401, 801 | [`AcmError::code`] | [`AcmError`], matched by variant |

pub(crate) mod incoming;
pub(crate) mod manager;
pub(crate) mod progress;
pub(crate) mod session;

pub use crate::error::{AcmError, Capability, Invalid, TokenRefusal};
pub use crate::events::{Callback, Event, EventStream, EventType};
pub use crate::types::{
    CollaborateEventInfo, CollaborateEventType, CollaborateHandler, CollaborateRequest,
    CollaborateResult, ConnectErrorCode, ConnectOptions, ConnectResult, Context, DisconnectReason,
    EventCallbackInfo, PeerInfo, Permission, SessionId, StartOptionParams, collaboration_keys,
    collaboration_values,
};
pub use incoming::{IncomingRequest, IncomingRequests};
pub use manager::{AbilityConnectionManager, AcceptConnect};
pub use progress::SendProgress;
pub use session::{ConnectError, Session};
