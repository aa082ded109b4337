//! A Modbus line's transport: the port or connection, the one request at a time on it, its
//! timeout, and the silence a serial line needs between frames. What a failure means for
//! the units on the line is the driver's business ([`super::driver`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, sleep_until, timeout};
use tokio_modbus::ExceptionCode;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::{Slave, SlaveContext, rtu, tcp};
use uns_model::Parity;

use super::plan::RegisterKind;

/// What carries a line's frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP (MBAP framing) to `host:port`.
    Tcp { host: String, port: u16 },
    /// Modbus RTU on a serial port.
    Serial(SerialLine),
    /// Modbus RTU frames through a TCP stream to a serial gateway.
    RtuOverTcp { host: String, port: u16 },
}

/// The settings of a serial line, shared by every device on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialLine {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
    /// Silence between a reply and the next request.
    pub inter_frame_delay: Duration,
}

impl SerialLine {
    /// The Modbus serial line minimum: 3.5 character times of 11 bits, but a fixed 1750 µs
    /// above 19200 baud, where timers would otherwise have to be implausibly precise.
    pub fn default_inter_frame_delay(baud: u32) -> Duration {
        if baud > 19200 || baud == 0 {
            Duration::from_micros(1750)
        } else {
            Duration::from_micros(38_500_000 / u64::from(baud))
        }
    }
}

pub(crate) enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
    Written,
}

/// Why a request did not produce data.
pub(crate) enum Failure {
    /// The device answered with an exception: the line is fine.
    Exception(ExceptionCode),
    /// No answer in time: the unit's failure, perhaps the line's.
    Timeout(String),
    /// The port or connection failed; it is closed.
    Transport(String),
    /// Not sent: the write cannot be expressed for this tag.
    Refused(String),
}

/// One request on the line.
pub(crate) enum Op<'a> {
    Read(RegisterKind, u16, u16),
    WriteCoil(u16, bool),
    WriteRegister(u16, u16),
    WriteRegisters(u16, &'a [u16]),
}

/// The open port or connection of a line, and its pacing.
pub(crate) struct Link {
    transport: Transport,
    ctx: Option<Context>,
    /// No request before this instant: the line's silence between frames.
    quiet_until: Instant,
}

impl Link {
    pub(crate) fn new(transport: Transport) -> Link {
        Link {
            transport,
            ctx: None,
            quiet_until: Instant::now(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.ctx.is_some()
    }

    pub(crate) fn close(&mut self) {
        self.ctx = None;
    }

    pub(crate) async fn open(&mut self, limit: Duration) -> Result<(), String> {
        let ctx = match &self.transport {
            Transport::Tcp { host, port } => tcp::attach(connect_tcp(host, *port, limit).await?),
            Transport::RtuOverTcp { host, port } => {
                rtu::attach(connect_tcp(host, *port, limit).await?)
            }
            Transport::Serial(line) => {
                let port = open_serial(line)
                    .map_err(|e| format!("cannot open serial port {}: {e}", line.path))?;
                rtu::attach(port)
            }
        };
        self.ctx = Some(ctx);
        Ok(())
    }

    fn inter_frame_delay(&self) -> Duration {
        match &self.transport {
            Transport::Serial(line) => line.inter_frame_delay,
            _ => Duration::ZERO,
        }
    }

    /// Sends one request to `unit` and waits at most `limit` for its answer.
    pub(crate) async fn call(
        &mut self,
        unit: u8,
        limit: Duration,
        op: Op<'_>,
    ) -> Result<Data, Failure> {
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(Failure::Transport("not connected".into()));
        };
        // Only sleep when there is silence left to keep: tokio rounds a timer up to the next
        // millisecond, so a sleep until "now" would still park every request on the timer
        // wheel (it measurably cost CPU in the 100,000-tag load run).
        if self.quiet_until > Instant::now() {
            sleep_until(self.quiet_until).await;
        }
        ctx.set_slave(Slave(unit));
        let result = match op {
            Op::Read(RegisterKind::Coil, a, n) => {
                request(limit, ctx.read_coils(a, n)).await.map(Data::Bits)
            }
            Op::Read(RegisterKind::DiscreteInput, a, n) => {
                request(limit, ctx.read_discrete_inputs(a, n))
                    .await
                    .map(Data::Bits)
            }
            Op::Read(RegisterKind::InputRegister, a, n) => {
                request(limit, ctx.read_input_registers(a, n))
                    .await
                    .map(Data::Words)
            }
            Op::Read(RegisterKind::HoldingRegister, a, n) => {
                request(limit, ctx.read_holding_registers(a, n))
                    .await
                    .map(Data::Words)
            }
            Op::WriteCoil(a, on) => request(limit, ctx.write_single_coil(a, on))
                .await
                .map(|()| Data::Written),
            Op::WriteRegister(a, w) => request(limit, ctx.write_single_register(a, w))
                .await
                .map(|()| Data::Written),
            Op::WriteRegisters(a, words) => request(limit, ctx.write_multiple_registers(a, words))
                .await
                .map(|()| Data::Written),
        };
        let gap = self.inter_frame_delay();
        if !gap.is_zero() {
            self.quiet_until = Instant::now() + gap;
        }
        if let Err(Failure::Transport(_)) = result {
            self.close();
        }
        result
    }
}

/// Opens a serial port with a line's settings, exclusively (TIOCEXCL): a second program on
/// the line would garble it.
pub fn open_serial(line: &SerialLine) -> tokio_serial::Result<tokio_serial::SerialStream> {
    let builder = tokio_serial::new(&line.path, line.baud)
        .parity(match line.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .data_bits(match line.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .stop_bits(if line.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        });
    tokio_serial::SerialStream::open(&builder)
}

async fn connect_tcp(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<tokio::net::TcpStream, String> {
    let addr: SocketAddr = timeout(limit, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("resolving {host} took longer than the timeout"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let stream = timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection to {addr} within the timeout"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    // One small request at a time: waiting to coalesce would only add latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn request<T>(
    limit: Duration,
    call: impl Future<Output = tokio_modbus::Result<T>>,
) -> Result<T, Failure> {
    match timeout(limit, call).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(exception))) => Err(Failure::Exception(exception)),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => {
            // A reply for another unit or request (a late answer after a timeout): the line
            // is out of step, which only a fresh start fixes.
            Err(Failure::Transport(format!("unexpected reply: {e}")))
        }
        Ok(Err(e)) => Err(Failure::Transport(e.to_string())),
        Err(_) => Err(Failure::Timeout(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inter_frame_delay_is_three_and_a_half_characters() {
        assert_eq!(
            SerialLine::default_inter_frame_delay(9600),
            Duration::from_micros(4010)
        );
        assert_eq!(
            SerialLine::default_inter_frame_delay(19200),
            Duration::from_micros(2005)
        );
        assert_eq!(
            SerialLine::default_inter_frame_delay(115_200),
            Duration::from_micros(1750)
        );
    }
}
