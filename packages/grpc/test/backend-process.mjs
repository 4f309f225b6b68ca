// A gRPC backend in its own process, so a test can kill it as a crash would (SIGKILL: sockets close
// with no goodbye). Serves the Echo service of fixtures.ts; reports on stdout, one line per event:
// "port N" once bound, "call Method" per call received, "held" when a call is held open.
import * as grpc from '@grpc/grpc-js';

const name = process.argv[2] ?? 'child';
const json = {
  serialize: (value) => Buffer.from(JSON.stringify(value)),
  deserialize: (buf) => JSON.parse(buf.toString('utf8')),
};
const method = (m, requestStream, responseStream) => ({
  path: `/fulcrum.test.Echo/${m}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
const server = new grpc.Server();
server.addService(
  {
    Unary: method('Unary', false, false),
    ServerStream: method('ServerStream', false, true),
    ClientStream: method('ClientStream', true, false),
    Bidi: method('Bidi', true, true),
  },
  {
    Unary(call, callback) {
      process.stdout.write('call Unary\n');
      if (call.request.hold) process.stdout.write('held\n');
      else callback(null, { backend: name });
    },
    ServerStream(call) {
      process.stdout.write('call ServerStream\n');
      call.write({ backend: name, seq: 0 });
      process.stdout.write('held\n');
    },
    ClientStream(call, callback) {
      process.stdout.write('call ClientStream\n');
      call.on('data', () => process.stdout.write('held\n'));
      call.on('end', () => callback(null, { backend: name }));
    },
    Bidi(call) {
      process.stdout.write('call Bidi\n');
      call.on('data', (m) => {
        call.write({ backend: name, text: m.text });
        process.stdout.write('held\n');
      });
    },
  },
);
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`port ${port}\n`);
});
