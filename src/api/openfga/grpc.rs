//! `openfga.v1.OpenFGAService` over gRPC: each call hands its message to
//! [`Fga`]; errors become statuses carrying OpenFGA's code (see
//! [`super::error`]).

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::error::FgaResult;
use super::pb;
use super::service::Fga;
use super::token;

type Answer<T> = Result<Response<T>, Status>;

fn answer<T>(r: FgaResult<T>) -> Answer<T> {
    r.map(Response::new).map_err(Status::from)
}

/// The consistency token a request sent in its metadata (opt-in).
fn token_of<T>(r: &Request<T>) -> Option<String> {
    r.metadata()
        .get(token::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Fga {
    /// Runs a query with the request's consistency token in force.
    async fn scoped<T>(
        &self,
        token: Option<String>,
        work: impl std::future::Future<Output = FgaResult<T>>,
    ) -> FgaResult<T> {
        token::scoped(self.zookies(), token.as_deref(), work)?.await
    }
}

#[tonic::async_trait]
impl pb::open_fga_service_server::OpenFgaService for Fga {
    async fn read(&self, r: Request<pb::ReadRequest>) -> Answer<pb::ReadResponse> {
        let t = token_of(&r);
        answer(self.scoped(t, Fga::read(self, r.into_inner())).await)
    }
    async fn write(&self, r: Request<pb::WriteRequest>) -> Answer<pb::WriteResponse> {
        let (answer, zookie) = Fga::write_with_token(self, r.into_inner())
            .await
            .map_err(Status::from)?;
        let mut response = Response::new(answer);
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(zookie) {
            response.metadata_mut().insert(token::HEADER, v);
        }
        Ok(response)
    }
    async fn check(&self, r: Request<pb::CheckRequest>) -> Answer<pb::CheckResponse> {
        let t = token_of(&r);
        answer(self.scoped(t, Fga::check(self, r.into_inner())).await)
    }
    async fn batch_check(
        &self,
        r: Request<pb::BatchCheckRequest>,
    ) -> Answer<pb::BatchCheckResponse> {
        let t = token_of(&r);
        answer(self.scoped(t, Fga::batch_check(self, r.into_inner())).await)
    }
    async fn expand(&self, r: Request<pb::ExpandRequest>) -> Answer<pb::ExpandResponse> {
        let t = token_of(&r);
        answer(self.scoped(t, Fga::expand(self, r.into_inner())).await)
    }
    async fn read_authorization_models(
        &self,
        r: Request<pb::ReadAuthorizationModelsRequest>,
    ) -> Answer<pb::ReadAuthorizationModelsResponse> {
        answer(self.read_models(r.into_inner()).await)
    }
    async fn read_authorization_model(
        &self,
        r: Request<pb::ReadAuthorizationModelRequest>,
    ) -> Answer<pb::ReadAuthorizationModelResponse> {
        answer(self.read_model(r.into_inner()).await)
    }
    async fn write_authorization_model(
        &self,
        r: Request<pb::WriteAuthorizationModelRequest>,
    ) -> Answer<pb::WriteAuthorizationModelResponse> {
        answer(self.write_model(r.into_inner()).await)
    }
    async fn write_assertions(
        &self,
        r: Request<pb::WriteAssertionsRequest>,
    ) -> Answer<pb::WriteAssertionsResponse> {
        answer(Fga::write_assertions(self, r.into_inner()).await)
    }
    async fn read_assertions(
        &self,
        r: Request<pb::ReadAssertionsRequest>,
    ) -> Answer<pb::ReadAssertionsResponse> {
        answer(Fga::read_assertions(self, r.into_inner()).await)
    }
    async fn read_changes(
        &self,
        r: Request<pb::ReadChangesRequest>,
    ) -> Answer<pb::ReadChangesResponse> {
        answer(Fga::read_changes(self, r.into_inner()).await)
    }
    async fn create_store(
        &self,
        r: Request<pb::CreateStoreRequest>,
    ) -> Answer<pb::CreateStoreResponse> {
        answer(Fga::create_store(self, r.into_inner()).await)
    }
    async fn update_store(
        &self,
        r: Request<pb::UpdateStoreRequest>,
    ) -> Answer<pb::UpdateStoreResponse> {
        answer(Fga::update_store(self, r.into_inner()).await)
    }
    async fn delete_store(
        &self,
        r: Request<pb::DeleteStoreRequest>,
    ) -> Answer<pb::DeleteStoreResponse> {
        answer(Fga::delete_store(self, r.into_inner()).await)
    }
    async fn get_store(&self, r: Request<pb::GetStoreRequest>) -> Answer<pb::GetStoreResponse> {
        answer(Fga::get_store(self, r.into_inner()).await)
    }
    async fn list_stores(
        &self,
        r: Request<pb::ListStoresRequest>,
    ) -> Answer<pb::ListStoresResponse> {
        answer(Fga::list_stores(self, r.into_inner()).await)
    }

    type StreamedListObjectsStream =
        Pin<Box<dyn Stream<Item = Result<pb::StreamedListObjectsResponse, Status>> + Send>>;

    async fn streamed_list_objects(
        &self,
        r: Request<pb::StreamedListObjectsRequest>,
    ) -> Answer<Self::StreamedListObjectsStream> {
        let t = token_of(&r);
        let objects = self
            .scoped(t, Fga::streamed_list_objects(self, r.into_inner()))
            .await
            .map_err(Status::from)?;
        let stream = tokio_stream::StreamExt::map(objects.into_stream(), |item| {
            item.map(|object| pb::StreamedListObjectsResponse { object })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_objects(
        &self,
        r: Request<pb::ListObjectsRequest>,
    ) -> Answer<pb::ListObjectsResponse> {
        let t = token_of(&r);
        answer(
            self.scoped(t, Fga::list_objects(self, r.into_inner()))
                .await,
        )
    }
    async fn list_users(&self, r: Request<pb::ListUsersRequest>) -> Answer<pb::ListUsersResponse> {
        let t = token_of(&r);
        answer(self.scoped(t, Fga::list_users(self, r.into_inner())).await)
    }
}
