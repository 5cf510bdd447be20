//! A real object store with a test's hooks around put, get and list: the
//! bytes still land in (and come from) the real store, while the test slows,
//! fails, counts or times the calls it cares about. Every other call goes
//! straight through.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::fmt;
use std::sync::Arc;

/// What a test does around one kind of call. Each default passes the call
/// to `inner` unchanged, so a test writes only the hooks it needs.
#[async_trait]
pub trait StoreHooks: fmt::Debug + Send + Sync + 'static {
    async fn put(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        inner.put_opts(location, payload, opts).await
    }

    async fn get(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        inner.get_opts(location, options).await
    }

    fn list(
        &self,
        inner: &dyn ObjectStore,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        inner.list(prefix)
    }
}

/// `inner` with `hooks` around its put, get and list.
#[derive(Debug)]
pub struct HookedStore<H> {
    pub inner: Arc<dyn ObjectStore>,
    pub hooks: H,
}

impl<H: StoreHooks> HookedStore<H> {
    pub fn new(inner: Arc<dyn ObjectStore>, hooks: H) -> Arc<HookedStore<H>> {
        Arc::new(HookedStore { inner, hooks })
    }

    /// Hooks over a fresh `InMemory`.
    pub fn in_memory(hooks: H) -> Arc<HookedStore<H>> {
        HookedStore::new(Arc::new(InMemory::new()), hooks)
    }
}

impl<H> fmt::Display for HookedStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookedStore({})", self.inner)
    }
}

#[async_trait]
impl<H: StoreHooks> ObjectStore for HookedStore<H> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.hooks
            .put(self.inner.as_ref(), location, payload, opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.hooks.get(self.inner.as_ref(), location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.hooks.list(self.inner.as_ref(), prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
