//! Calls that send a typed request and count the answer's bytes without decoding them, as
//! h2load does: what is measured is the server, not the client's decoding of its answers.

use std::marker::PhantomData;

use bytes::Buf;
use http::uri::PathAndQuery;
use tonic::{
    Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

/// Sends `request` to `path` and answers with the size of the reply's message.
pub async fn call<Req>(
    channel: Channel,
    path: &'static str,
    authorization: Option<&MetadataValue<Ascii>>,
    request: Req,
) -> Result<usize, Status>
where
    Req: prost::Message + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = Request::new(request);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
    }
    let codec = Unread::<Req>(PhantomData);
    Ok(grpc
        .unary(request, PathAndQuery::from_static(path), codec)
        .await?
        .into_inner())
}

struct Unread<Req>(PhantomData<Req>);

impl<Req: prost::Message + Send + 'static> Codec for Unread<Req> {
    type Encode = Req;
    type Decode = usize;
    type Encoder = Encode<Req>;
    type Decoder = Skip;

    fn encoder(&mut self) -> Self::Encoder {
        Encode(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Skip
    }
}

struct Encode<Req>(PhantomData<Req>);

impl<Req: prost::Message> Encoder for Encode<Req> {
    type Item = Req;
    type Error = Status;

    fn encode(&mut self, item: Req, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }
}

struct Skip;

impl Decoder for Skip {
    type Item = usize;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<usize>, Status> {
        let size = src.remaining();
        src.advance(size);
        Ok(Some(size))
    }
}
