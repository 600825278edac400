mod reexport {
    pub use concurry::*;
}

pub struct ViaRuntime;

#[concurry::worker(crate = ::concurry_runtime)]
impl ViaRuntime {
    pub fn new() -> Self {
        ViaRuntime
    }

    pub fn one(&self) -> u8 {
        1
    }
}

pub struct ViaModule;

#[reexport::worker(crate = crate::reexport, mode = "sync")]
impl ViaModule {
    pub fn new() -> Self {
        ViaModule
    }

    pub async fn two(&mut self) -> u8 {
        2
    }
}

fn main() {
    let a = ViaRuntime::options().init().unwrap();
    let _: concurry_runtime::Promise<u8> = a.one();
    let b = ViaModule::options().init().unwrap();
    assert_eq!(b.blocking().two().unwrap(), 2);
}
