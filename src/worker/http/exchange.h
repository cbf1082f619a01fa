// An answer that takes time and streams: the client side's view of a request
// handed to something outside the connection (the proxy, gateway/). The
// connection and the handler talk through these two interfaces only, so http/
// never depends on gateway/.
//
// Life of an exchange, for one request:
//   - The connection starts it when the request's headers are complete
//     (Handlers::startExchange), passing itself as the ExchangeSink.
//   - Body bytes follow with onBody() as they are parsed, then onBodyEnd().
//     While the exchange cannot take more (its upstream is slow), it calls
//     sink.pauseInput(); the connection stops reading the client until
//     resumeInput(). Whatever was already read is still delivered: an exchange
//     buffers at most one read (Worker's read buffer) beyond its own limit.
//   - The response goes out with sink.beginResponse() (once), sink.write() as
//     bytes arrive, and sink.finish() when it is complete. write() only
//     appends; flush() and finish() hand the bytes to the worker's send batch,
//     so what one upstream read brought leaves in one send, once the loop has
//     run this wakeup's callbacks, with the answers to other clients. While
//     sink.pendingOutput() is above the exchange's limit it stops reading its
//     upstream, and resumes on onOutputDrained().
//   - An exchange may finish before the request body ended (an early answer:
//     a breaker's 503, an upstream's 413): the connection reads and discards
//     the rest of the body, then carries on with the next request.
//   - The connection destroys the exchange once it is done, or at once when
//     the client is gone (reset, timeout, a parse error in the body): its
//     destructor releases everything (an upstream connection still in use is
//     closed, not pooled).
//   - The sink never calls back into the exchange from inside one of its own
//     calls, and the exchange never destroys the connection.
#pragma once

#include <cstddef>
#include <sys/socket.h>

#include <cstdint>
#include <string_view>

#include "worker/http/response.h"

namespace phalanx::worker {

// What a response needs to know about the client.
struct ClientInfo {
  std::string_view address;  // the peer's IP, as text
  const sockaddr* peer = nullptr;  // the peer's address, as accept4() gave it
};

class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  // Decides the response's Connection header: `must_close` when the response
  // can only end by closing (a close-delimited body to an HTTP/1.0 client).
  // The connection adds its own reasons (the client asked, drain, shedding).
  virtual ConnectionHeader beginResponse(bool must_close) = 0;
  virtual void write(std::string_view bytes) = 0;
  // Hands what write() appended to the socket (with the worker's send batch).
  virtual void flush() = 0;
  // The response is complete. `reusable` false: the connection must close after it
  // (the body was cut short, or framing could not be kept). The connection
  // counts the bytes written itself.
  virtual void finish(int status, bool reusable) = 0;
  // Bytes written by write() that the client has not taken yet.
  virtual size_t pendingOutput() const = 0;
  virtual void pauseInput() = 0;
  virtual void resumeInput() = 0;
  virtual const ClientInfo& client() const = 0;
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void onBody(const char* data, size_t length) = 0;
  virtual void onBodyEnd() = 0;
  virtual void onOutputDrained() = 0;
  // What the access log adds to the request's line: the upstream target, its
  // status and its time (empty / 0 when none was reached).
  struct Report {
    std::string_view request_id;
    std::string_view target;
    int upstream_status = 0;
    double upstream_ms = 0;
    std::string_view key_id;  // see AccessEntry
    std::string_view cache;
  };
  virtual Report report() const = 0;
};

}  // namespace phalanx::worker
