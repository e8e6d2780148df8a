// A carrier in Node, as a Node user would write it: @grpc/grpc-js with @grpc/proto-loader
// loading proto/ at run time. Files the sea sample and reads a refusal's details. Run by
// tests/interop.rs when `npm install` has been run in this folder (.ci/run does).
//
//   node tests/interop/client.mjs localhost:7443 CA.pem CERT.pem KEY.pem schemas/examples
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const [target, ca, cert, key, samples] = process.argv.slice(2);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const definition = protoLoader.loadSync("aci/v1/carrier.proto", {
  includeDirs: [join(root, "proto")],
  keepCase: true, longs: String, enums: String, defaults: false, oneofs: true,
});
const aci = grpc.loadPackageDefinition(definition).aci.v1;
const credentials = grpc.credentials.createSsl(
  readFileSync(ca), readFileSync(key), readFileSync(cert));
const carrier = new aci.CarrierGateway(target, credentials);

// proto-loader takes a Timestamp as { seconds, nanos }, not as an RFC 3339 string.
function timestamps(value) {
  if (Array.isArray(value)) return value.map(timestamps);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, timestamps(v)]));
  }
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?Z$/.test(value)) {
    const ms = Date.parse(value);
    return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
  }
  return value;
}

function submit(manifest) {
  return new Promise((resolve, reject) =>
    carrier.Submit({ manifest }, { deadline: Date.now() + 10000 },
      (error, receipt) => (error ? reject(error) : resolve(receipt))));
}

const manifest = timestamps(JSON.parse(readFileSync(join(samples, "road-f50.json"))));
manifest.lrn = `NODE-${Date.now()}`;
const receipt = await submit(manifest);
if (!receipt.mrn) throw new Error(`no MRN in ${JSON.stringify(receipt)}`);
console.log(`node: registered ${receipt.mrn}`);

const invalid = timestamps(JSON.parse(readFileSync(join(samples, "invalid", "sea-f10.json"))));
try {
  await submit(invalid);
  throw new Error("the invalid sample was accepted");
} catch (error) {
  if (error.code !== grpc.status.INVALID_ARGUMENT) throw error;
  const details = error.metadata.get("grpc-status-details-bin");
  if (details.length !== 1) throw new Error("no rich error details");
  console.log(`node: refused (${error.details}), ${details[0].length} bytes of details`);
}
carrier.close();
console.log(JSON.stringify({ interop: "node ok" }));
