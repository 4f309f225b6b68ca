// One grpc-js client, three grpc-js servers, every call balanced by Fulcrum (the `fulcrum` policy).
//
//   node run.mjs [--calls 300]
//
// A layer-4 balancer would pin this client's one HTTP/2 connection — all its calls — to one server.
// The policy balances each call instead, with peak-EWMA (latency × outstanding calls):
//
//   1. spread     calls go to all three servers
//   2. slow       server `c` answers 20 ms late: peak-EWMA sends it a small share of the calls
//   3. health     server `b` reports NOT_SERVING on grpc.health.v1.Health/Watch: it gets no calls
//                 until it reports SERVING again
//
// Prints what each server received; exits 0 when every check passed, 1 otherwise.
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createHealthService, fulcrumServiceConfig, onLoadBalancer, registerFulcrumPolicy } from '@fulcrum/grpc';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '300' } } });
const CALLS = Number(values.calls);

// A service without .proto files: JSON messages (any serializer works the same way).
const json = { serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(b.toString()) };
const service = {
  Hello: {
    path: '/example.Greeter/Hello',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

async function startServer(name, delayMs) {
  const server = new grpc.Server();
  const health = createHealthService({ '': 'SERVING' });
  const state = { name, delayMs, calls: 0, health, server };
  server.addService(service, {
    Hello(call, callback) {
      state.calls++;
      setTimeout(() => callback(null, { from: name, greeting: `hello ${call.request.name}` }), state.delayMs);
    },
  });
  server.addService(health.definition, health.implementation);
  state.port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
  );
  return state;
}

const servers = await Promise.all([startServer('a', 1), startServer('b', 1), startServer('c', 1)]);

registerFulcrumPolicy();
let lb;
onLoadBalancer((created) => (lb = created));
const Greeter = grpc.makeGenericClientConstructor(service, 'Greeter');
const target = `ipv4:${servers.map((s) => `127.0.0.1:${s.port}`).join(',')}`;
const client = new Greeter(target, grpc.credentials.createInsecure(), {
  'grpc.service_config': JSON.stringify(fulcrumServiceConfig({ algorithm: 'peak-ewma', healthCheck: { serviceName: '' } })),
});
const hello = (name) => new Promise((resolve, reject) => client.Hello({ name }, (e, r) => (e ? reject(e) : resolve(r))));

async function until(check, what) {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

async function round(label) {
  for (const s of servers) s.calls = 0;
  // Ten calls at a time, like a service under load.
  let next = 0;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next < CALLS) {
        next++;
        await hello('fulcrum');
      }
    }),
  );
  const shares = Object.fromEntries(servers.map((s) => [s.name, s.calls]));
  console.log(`${label.padEnd(10)} ${servers.map((s) => `${s.name}: ${String(s.calls).padStart(4)}`).join('   ')}`);
  return shares;
}

const checks = [];
const check = (name, ok) => {
  checks.push({ name, ok });
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name}`);
};

try {
  await new Promise((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
  await until(() => lb?.eligibleCount === 3, 'three servers in the balancer');

  const spread = await round('spread');
  check(
    'every server receives calls',
    Object.values(spread).every((n) => n > 0),
  );

  servers[2].delayMs = 20;
  await round('warm-up');
  const slow = await round('slow c');
  check('peak-EWMA sends the slow server the smallest share', slow.c < slow.a && slow.c < slow.b);

  servers[2].delayMs = 1;
  servers[1].health.setStatus('', 'NOT_SERVING');
  await until(() => lb.eligibleCount === 2, 'b to leave the balancer');
  const unhealthy = await round('b down');
  check('a NOT_SERVING server receives no call', unhealthy.b === 0);

  servers[1].health.setStatus('', 'SERVING');
  await until(() => lb.eligibleCount === 3, 'b to come back');
  const back = await round('b back');
  check('it receives calls again once SERVING', back.b > 0);

  console.log(`\nthe load balancer's view:`);
  for (const b of lb.snapshot().backends) console.log(`  ${b.id.padEnd(16)} ${b.state}  requests ${b.requests}  latency ${b.latencyEwma.toFixed(1)} ms`);
} catch (error) {
  check(String(error), false);
} finally {
  client.close();
  for (const s of servers) {
    s.health.close();
    s.server.forceShutdown();
  }
}
process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
