//! `sparkedge sim modbus`: a simulated Modbus PLC with changing values of every type and
//! byte order, writable memory, and a hole in its address space, so drivers (ours or anyone's)
//! can be tried without hardware. It speaks Modbus TCP (answering any unit id), and RTU on a
//! serial port or over TCP as a set of units sharing the line, each with its own memory;
//! a unit id it does not have gets no answer, as on a real line.
//!
//! Register map (0-based offsets; `t` = whole seconds since start, `sine` = 50 + 50·sin(2πt/60)):
//!
//! | address | type | order | value |
//! |---|---|---|---|
//! | hr:0–99 | any | — | memory, writable, starts at 0 |
//! | hr:100 | uint16 | — | t |
//! | hr:101 | int16 | — | −t |
//! | hr:102 / hr:104 | uint32 | ABCD / CDAB | t·1000 |
//! | hr:106 / 108 / 110 / 112 | float32 | ABCD / BADC / CDAB / DCBA | sine |
//! | hr:114 / hr:118 | float64 | ABCDEFGH / GHEFCDAB | sine |
//! | hr:122 | int64 | ABCDEFGH | −t·10⁹ |
//! | hr:126 | uint64 | HGFEDCBA | t·10⁹ |
//! | hr:130–137 | string, 16 chars | ABCD | `SPARKEDGE SIM` |
//! | hr:138 | bits | — | bit 0 = t is odd, bit 15 = 1 |
//! | hr:139 | uint16 | — | the unit id this PLC answers as (0 over Modbus TCP) |
//! | hr:140–199 | — | — | 0 |
//! | hr:200–299 | — | — | **do not exist** (illegal data address) |
//! | hr:300–399 | any | — | memory, writable |
//! | hr:1000–60999 | uint16 | — | (t + offset) mod 65536: a bulk area for load tests |
//! | ir:0–99 | — | — | the same as hr:100–199 (read-only) |
//! | coil:0–99 | bool | — | memory, writable; coil:100 = t is odd; coil:101–199 false |
//! | di:0–15 | bool | — | di:0 = t is odd, the rest false |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use uns_model::{ByteOrder, Value};

use super::codec;

/// The simulated PLC's state, shared by every connection.
#[derive(Debug)]
pub struct SimPlc {
    start: Instant,
    unit: u8,
    memory: Mutex<Memory>,
}

#[derive(Debug)]
struct Memory {
    /// hr:0–99 and hr:300–399.
    low: [u16; 100],
    high: [u16; 100],
    coils: [bool; 100],
}

impl Default for SimPlc {
    fn default() -> Self {
        SimPlc {
            start: Instant::now(),
            unit: 0,
            memory: Mutex::new(Memory {
                low: [0; 100],
                high: [0; 100],
                coils: [false; 100],
            }),
        }
    }
}

impl SimPlc {
    /// A PLC answering as unit `unit` on a serial line (its id is readable at hr:139).
    pub fn with_unit(unit: u8) -> SimPlc {
        SimPlc {
            unit,
            ..SimPlc::default()
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live registers hr:100–199 at `t` seconds.
    fn live(t: u64) -> [u16; 100] {
        let mut r = [0u16; 100];
        let sine = 50.0 + 50.0 * (t as f64 / 60.0 * std::f64::consts::TAU).sin();
        let mut put = |at: usize, value: Value, order: ByteOrder, len: usize| {
            if let Ok(words) = codec::encode(&value, value.datatype(), order, len) {
                r[at - 100..at - 100 + words.len()].copy_from_slice(&words);
            }
        };
        put(100, Value::UInt16(t as u16), ByteOrder::ABCD, 0);
        put(101, Value::Int16(-(t as i16)), ByteOrder::ABCD, 0);
        put(102, Value::UInt32((t * 1000) as u32), ByteOrder::ABCD, 0);
        put(104, Value::UInt32((t * 1000) as u32), ByteOrder::CDAB, 0);
        for (at, order) in [
            (106, ByteOrder::ABCD),
            (108, ByteOrder::BADC),
            (110, ByteOrder::CDAB),
            (112, ByteOrder::DCBA),
        ] {
            put(at, Value::Float32(sine as f32), order, 0);
        }
        put(114, Value::Float64(sine), ByteOrder::ABCD, 0);
        put(118, Value::Float64(sine), ByteOrder::CDAB, 0);
        put(
            122,
            Value::Int64(-(t as i64) * 1_000_000_000),
            ByteOrder::ABCD,
            0,
        );
        put(126, Value::UInt64(t * 1_000_000_000), ByteOrder::DCBA, 0);
        put(
            130,
            Value::String("SPARKEDGE SIM".into()),
            ByteOrder::ABCD,
            16,
        );
        r[38] = (t % 2) as u16 | 0x8000;
        r
    }

    fn seconds(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn holding(&self, start: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        let t = self.seconds();
        let mut live = SimPlc::live(t);
        live[39] = u16::from(self.unit);
        let memory = self.memory();
        (u32::from(start)..u32::from(start) + u32::from(count))
            .map(|a| match a {
                0..=99 => Ok(memory.low[a as usize]),
                100..=199 => Ok(live[a as usize - 100]),
                300..=399 => Ok(memory.high[a as usize - 300]),
                1000..=60999 => Ok((t as u32).wrapping_add(a) as u16),
                _ => Err(ExceptionCode::IllegalDataAddress),
            })
            .collect()
    }

    fn write(&self, start: u16, words: &[u16]) -> Result<(), ExceptionCode> {
        let mut memory = self.memory();
        let end = usize::from(start) + words.len();
        match (usize::from(start), end) {
            (s, e) if e <= 100 => memory.low[s..e].copy_from_slice(words),
            (s, e) if s >= 300 && e <= 400 => memory.high[s - 300..e - 300].copy_from_slice(words),
            _ => return Err(ExceptionCode::IllegalDataAddress),
        }
        Ok(())
    }

    fn bits(&self, start: u16, count: u16, coils: bool) -> Result<Vec<bool>, ExceptionCode> {
        let odd = self.seconds() % 2 == 1;
        let memory = self.memory();
        (u32::from(start)..u32::from(start) + u32::from(count))
            .map(|a| match (coils, a) {
                (true, 0..=99) => Ok(memory.coils[a as usize]),
                (true, 100) | (false, 0) => Ok(odd),
                (true, 101..=199) | (false, 1..=15) => Ok(false),
                _ => Err(ExceptionCode::IllegalDataAddress),
            })
            .collect()
    }

    /// Answers one request.
    pub fn answer(&self, request: Request<'_>) -> Result<Response, ExceptionCode> {
        match request {
            Request::ReadHoldingRegisters(a, n) => {
                self.holding(a, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                if u32::from(a) + u32::from(n) > 100 {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
                self.holding(a + 100, n).map(Response::ReadInputRegisters)
            }
            Request::ReadCoils(a, n) => self.bits(a, n, true).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => {
                self.bits(a, n, false).map(Response::ReadDiscreteInputs)
            }
            Request::WriteSingleRegister(a, w) => self
                .write(a, &[w])
                .map(|_| Response::WriteSingleRegister(a, w)),
            Request::WriteMultipleRegisters(a, words) => self
                .write(a, &words)
                .map(|_| Response::WriteMultipleRegisters(a, words.len() as u16)),
            Request::WriteSingleCoil(a, on) if a < 100 => {
                self.memory().coils[usize::from(a)] = on;
                Ok(Response::WriteSingleCoil(a, on))
            }
            Request::WriteSingleCoil(..) => Err(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    /// Reads memory back, for tests: holding registers `start..start+count`.
    pub fn read_holding(&self, start: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        self.holding(start, count)
    }
}

/// One connection's view of the shared PLC.
struct Connection(Arc<SimPlc>);

impl Service for Connection {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        std::future::ready(self.0.answer(request))
    }
}

/// The units of a serial line: each answers for itself, the rest of the ids are silent.
#[derive(Debug)]
pub struct SimLine {
    units: Vec<Arc<SimPlc>>,
    /// Requests to unit ids nobody here has (left unanswered).
    unanswered: AtomicU64,
}

impl SimLine {
    pub fn new(units: Vec<Arc<SimPlc>>) -> Arc<SimLine> {
        Arc::new(SimLine {
            units,
            unanswered: AtomicU64::new(0),
        })
    }

    /// How many requests went to unit ids not on this line: what a dead device costs the
    /// line.
    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
struct Line(Arc<SimLine>);

impl Service for Line {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let plc = self.0.units.iter().find(|plc| plc.unit == request.slave);
        std::future::ready(match plc {
            Some(plc) => plc.answer(request.request).map(Some),
            None => {
                self.0.unanswered.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        })
    }
}

/// Serves the units of `line` as RTU devices on an open serial port until the future is dropped.
pub async fn serve_rtu(
    port: tokio_serial::SerialStream,
    line: Arc<SimLine>,
) -> std::io::Result<()> {
    tokio_modbus::server::rtu::Server::new(port)
        .serve_forever(Line(line))
        .await
}

/// Serves the units of `line` as RTU devices behind a serial gateway: RTU frames over each TCP
/// connection accepted on `listener`.
pub async fn serve_rtu_over_tcp(listener: TcpListener, line: Arc<SimLine>) -> std::io::Result<()> {
    use tokio_modbus::server::rtu_over_tcp;
    let line = Line(line);
    let on_connected = |stream, addr: SocketAddr| {
        let line = line.clone();
        async move { rtu_over_tcp::accept_tcp_connection(stream, addr, move |_| Ok(Some(line.clone()))) }
    };
    rtu_over_tcp::Server::new(listener)
        .serve(&on_connected, |e| {
            tracing::debug!("simulated RTU gateway connection: {e}")
        })
        .await
}

/// Serves `plc` on `listener` until the future is dropped (which also drops every connection).
pub async fn serve(listener: TcpListener, plc: Arc<SimPlc>) -> std::io::Result<()> {
    let server = Server::new(listener);
    let on_connected = |stream, addr: SocketAddr| {
        let plc = plc.clone();
        async move { accept_tcp_connection(stream, addr, move |_| Ok(Some(Connection(plc.clone())))) }
    };
    server
        .serve(&on_connected, |e| {
            tracing::debug!("simulated PLC connection: {e}")
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::DataType;

    #[test]
    fn the_map_is_as_documented() {
        let live = SimPlc::live(15);
        assert_eq!(live[0], 15);
        let f = |at: usize, order: ByteOrder| {
            codec::decode(&live[at - 100..at - 98], DataType::Float32, order, 0).unwrap()
        };
        assert_eq!(f(106, ByteOrder::ABCD), Value::Float32(100.0));
        for (at, order) in [
            (108, ByteOrder::BADC),
            (110, ByteOrder::CDAB),
            (112, ByteOrder::DCBA),
        ] {
            assert_eq!(f(at, order), Value::Float32(100.0));
        }
        assert_eq!(
            codec::decode(&live[30..38], DataType::String, ByteOrder::ABCD, 16).unwrap(),
            Value::String("SPARKEDGE SIM".into())
        );
        let plc = SimPlc::default();
        assert_eq!(
            plc.read_holding(199, 2),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert!(
            plc.answer(Request::WriteMultipleRegisters(98, vec![1, 2, 3].into()))
                .is_err()
        );
        plc.answer(Request::WriteMultipleRegisters(300, vec![7, 8].into()))
            .unwrap();
        assert_eq!(plc.read_holding(300, 2), Ok(vec![7, 8]));
    }
}
