//! The public server's upgrade hook. actix-http hands every `Upgrade: websocket` request here
//! with the raw connection and the bytes it has read (`Framed`). The request is answered by
//! the same app as any other (middleware, `/ws` checks, error bodies, access log); when the
//! app accepts it (`GET /ws` answers 101 and leaves an [`Accepted`] in the response), the 101
//! is written, the HTTP/1 dispatcher and its buffers are gone, and this task owns the socket
//! for the life of the connection ([`connection::run`]). Any other answer is written and the
//! connection closes.

use std::rc::Rc;

use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, ServiceResponse};
use futures_util::SinkExt;

use super::connection::{self, Accepted};

/// The upgrade service factory over `app` (the public app, built once more per worker for
/// upgrade requests), configured like the server's own copy with `config`.
pub fn factory<T, S, B>(
    app: S,
    config: AppConfig,
) -> impl ServiceFactory<
    (Request, Framed<T, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let app = Rc::new(app);
    fn_factory(move || {
        let init = app.new_service(config.clone());
        async move {
            let app = Rc::new(init.await.map_err(|_| ())?);
            Ok(fn_service(move |(req, framed)| {
                serve(app.clone(), req, framed)
            }))
        }
    })
}

/// Answers one upgrade request, and runs the connection when it is accepted.
async fn serve<T, S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<T, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let mut res: Response<_> = match app.call(req).await {
        Ok(res) => Response::from(res.map_into_boxed_body()),
        Err(err) => Response::from(err),
    };
    let accepted = res.extensions_mut().remove::<Accepted>();
    let (mut head, body) = res.into_parts();
    match accepted {
        Some(accepted) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
            framed.send(Message::Item((head, BodySize::None))).await?;
            let parts = framed.into_parts();
            drop(parts.write_buf);
            connection::run(parts.io, parts.read_buf, accepted).await;
        }
        _ => {
            // Refused (or not ours): the answer, then the connection closes, as the client
            // asked to leave HTTP.
            head.head_mut().set_connection_type(ConnectionType::Close);
            let body = actix_web::body::to_bytes(body)
                .await
                .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
            let size = BodySize::Sized(body.len() as u64);
            framed.feed(Message::Item((head, size))).await?;
            if !body.is_empty() {
                framed.feed(Message::Chunk(Some(body))).await?;
            }
            framed.send(Message::Chunk(None)).await?;
        }
    }
    Ok(())
}
