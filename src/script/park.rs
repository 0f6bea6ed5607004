//! Requests that suspend a Lua thread without mlua's async-call machinery.
//!
//! mlua runs an async Rust function called from Lua by wrapping its future
//! in a fresh userdata with a finalizer and polling it from a Lua loop:
//! per call an allocation, a finalizer the collector runs later and a
//! second protected call, about 12 % of a scripted GET's instructions (callgrind,
//! 27,530 -> 24,343 per request). A
//! request does not need any of it: its future is *parked* with whatever
//! drives the Lua thread, and the thread yields mlua's own "pending"
//! marker (so mlua's `AsyncThread` treats it as any pending future). The
//! driver polls the parked future inside its own poll and resumes the
//! thread once it is done; the thread then takes the result.
//!
//! Drivers: a user's or an event's future (`runtime::watchdog::Watched`),
//! a callback run from Rust (`runtime::call_nested`) and [`call`] (for
//! code outside the runtime, e.g. tests). Each has its own [`Park`] and
//! makes it the state's current one while it polls, so a request from a
//! callback inside a request parks with the callback's driver, not the
//! user's. Owns parking and driving; it does not own what is parked
//! (`client_request`) nor the Lua wrappers that park (`client`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, Value};

type Parked = Pin<Box<dyn Future<Output = mlua::Result<Value>>>>;

/// One driver's parked request and, once done, its result.
#[derive(Default)]
pub(crate) struct Park {
    future: Cell<Option<Parked>>,
    done: Cell<Option<mlua::Result<Value>>>,
}

/// Per Lua state: the park of the driver polling now.
#[derive(Default)]
pub(crate) struct Parking {
    current: RefCell<Option<Rc<Park>>>,
}

/// This state's parking (created on first use).
pub(crate) fn parking(lua: &Lua) -> Rc<Parking> {
    if let Some(p) = lua.app_data_ref::<Rc<Parking>>() {
        return p.clone();
    }
    let p = Rc::new(Parking::default());
    lua.set_app_data(p.clone());
    p
}

/// Park `future` with the driver polling now; the caller (Lua) yields
/// [`Lua::poll_pending`] next and calls [`take`] when resumed.
pub(crate) fn park(parking: &Parking, future: Parked) -> mlua::Result<()> {
    let Some(park) = parking.current.borrow().clone() else {
        return Err(mlua::Error::runtime(
            "this call suspends the caller and can only run inside a user's task, \
             hook or event listener",
        ));
    };
    // Whatever an earlier call left (its yield raised) goes first.
    park.done.set(None);
    park.future.set(Some(future));
    Ok(())
}

/// The result of the request parked last by the driver polling now.
pub(crate) fn take(parking: &Parking) -> mlua::Result<Value> {
    let done = (parking.current.borrow().as_ref()).and_then(|park| park.done.take());
    done.unwrap_or_else(|| {
        Err(mlua::Error::runtime(
            "resumed without a result (a request's coroutine was resumed by hand?)",
        ))
    })
}

impl Park {
    /// Poll `inner` (the Lua thread's future) as its driver: the request
    /// the thread parked is polled first, and the thread is resumed only
    /// once that request is done.
    pub(crate) fn drive<F: Future>(
        self: &Rc<Self>,
        parking: &Parking,
        mut inner: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let prev = parking.current.replace(Some(self.clone()));
        let out = loop {
            if let Some(mut future) = self.future.take() {
                match future.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.future.set(Some(future));
                        break Poll::Pending;
                    }
                    Poll::Ready(r) => self.done.set(Some(r)),
                }
            }
            let out = inner.as_mut().poll(cx);
            if out.is_ready() {
                break out;
            }
            // Not parked: the thread waits on something else (a sleep).
            let parked = self.future.take();
            let more = parked.is_some();
            self.future.set(parked);
            if !more {
                break out;
            }
        };
        parking.current.replace(prev);
        out
    }
}

/// `f(args)` to completion, driving the requests it makes: what
/// `Function::call_async` is for Lua that calls the client (code that runs
/// Lua outside the runtime's users and events, e.g. tests).
pub fn call<R: FromLuaMulti + 'static>(
    lua: &Lua,
    f: &Function,
    args: impl IntoLuaMulti,
) -> impl Future<Output = mlua::Result<R>> + 'static {
    let parking = parking(lua);
    let park = Rc::new(Park::default());
    let thread = lua.create_thread(f.clone());
    let inner = thread.and_then(|t| t.into_async::<R>(args));
    async move {
        let mut inner = Box::pin(inner?);
        std::future::poll_fn(|cx| park.drive(&parking, inner.as_mut(), cx)).await
    }
}

/// What a parking thread yields: mlua's own marker of a pending future, so
/// that mlua's `AsyncThread` waits for a wake instead of resuming the
/// thread at once (any other yielded value makes it poll again).
pub(crate) fn marker() -> Value {
    Value::LightUserData(Lua::poll_pending())
}
