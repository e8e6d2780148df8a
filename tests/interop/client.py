#!/usr/bin/env python3
"""A carrier and an operator as a Python user would be: stock grpcio, stubs generated from
proto/ by grpc_tools.protoc at run time, grpcio-status for the rich error model, the stock
health and reflection clients, prometheus_client's parsers. Run by tests/interop.rs against a
real gateway; exits non-zero with a message on the first thing that does not work.

    pip install grpcio grpcio-tools grpcio-status grpcio-health-checking grpcio-reflection \
        prometheus_client
    python3 tests/interop/client.py --carrier localhost:7443 --peer localhost:7444 \
        --admin http://127.0.0.1:9464 --ca var/pki/gateway-ca.pem \
        --cert var/pki/carrier.pem --key var/pki/carrier.key \
        --peer-cert var/pki/GB-DEV.pem --peer-key var/pki/GB-DEV.key --samples schemas/examples
"""

import argparse
import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid

import grpc
import grpc_tools
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stubs():
    """Generates the aci.v1 stubs with stock protoc (grpc_tools) and imports them."""
    out = tempfile.mkdtemp(prefix="aci-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    includes = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [os.path.join("aci", "v1", name) for name in
              ("carrier.proto", "exchange.proto", "manifest.proto", "constraints.proto")]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"),
         "-I", includes, f"--python_out={out}", f"--grpc_python_out={out}", *protos],
        check=True)
    sys.path.insert(0, out)
    return (importlib.import_module("aci.v1.carrier_pb2"),
            importlib.import_module("aci.v1.carrier_pb2_grpc"),
            importlib.import_module("aci.v1.manifest_pb2"))


def check(condition, message):
    if not condition:
        sys.exit(f"interop: {message}")


def channel(target, ca, cert, key):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(),
        private_key=open(key, "rb").read(),
        certificate_chain=open(cert, "rb").read())
    return grpc.secure_channel(target, credentials)


def file_samples(carrier, pb, samples):
    run = uuid.uuid4().hex[:8].upper()
    with open(os.path.join(samples, "sea-f10.json")) as f:
        manifest = json_format.Parse(f.read(), pb["manifest"].Manifest())
    manifest.lrn = f"PY-{run}"
    receipt = carrier.Submit(pb["carrier"].SubmitRequest(manifest=manifest), timeout=10)
    check(receipt.mrn and receipt.lrn == manifest.lrn, f"a JSON filing's receipt: {receipt}")
    again = carrier.Submit(pb["carrier"].SubmitRequest(manifest=manifest), timeout=10)
    check(again.mrn == receipt.mrn, "an idempotent retry returns the original receipt")
    xml = open(os.path.join(samples, "air-f23.xml"), "rb").read()
    receipt = carrier.Submit(pb["carrier"].SubmitRequest(xml=xml), timeout=10)
    check(receipt.mrn, f"an XML filing's receipt: {receipt}")
    status = carrier.GetStatus(pb["carrier"].GetStatusRequest(mrn=receipt.mrn), timeout=10)
    check(status.mrn == receipt.mrn, "the status of an XML filing")
    print(f"interop: JSON and XML filings registered ({receipt.mrn})")


def read_refusal(carrier, pb, samples):
    with open(os.path.join(samples, "invalid", "sea-f10.json")) as f:
        manifest = json_format.Parse(f.read(), pb["manifest"].Manifest())
    try:
        carrier.Submit(pb["carrier"].SubmitRequest(manifest=manifest), timeout=10)
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"refused with {error.code()}")
        status = rpc_status.from_call(error)
        check(status is not None, "the refusal carries grpc-status-details-bin")
        bad_request = error_details_pb2.BadRequest()
        report = pb["carrier"].ValidationReport()
        for detail in status.details:
            if detail.Is(bad_request.DESCRIPTOR):
                detail.Unpack(bad_request)
            elif detail.Is(report.DESCRIPTOR):
                detail.Unpack(report)
        errors = [v for v in report.violations if v.severity == pb["carrier"].SEVERITY_ERROR]
        check(bad_request.field_violations, "a BadRequest with field violations")
        check(len(bad_request.field_violations) == len(errors),
              f"BadRequest holds the {len(errors)} errors and no warning, "
              f"not {len(bad_request.field_violations)}")
        check(all(v.field for v in bad_request.field_violations), "each violation has a path")
        print(f"interop: refusal read with {len(errors)} errors in BadRequest and "
              f"{len(report.violations)} findings in the ValidationReport")
        return
    sys.exit("interop: the invalid sample was accepted")


def health(channel_, serving, absent):
    stub = health_pb2_grpc.HealthStub(channel_)
    answer = stub.Check(health_pb2.HealthCheckRequest(service=serving), timeout=10)
    check(answer.status == health_pb2.HealthCheckResponse.SERVING, f"{serving} is serving")
    try:
        stub.Check(health_pb2.HealthCheckRequest(service=absent), timeout=10)
        sys.exit(f"interop: health reports {absent} on a listener that does not serve it")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.NOT_FOUND, f"{absent}: {error.code()}")


def reflected_services(channel_, version):
    """The services a listener lists, asked with the stock v1alpha messages (v1's are the
    same messages under another package) on the method of `version`."""
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    call = channel_.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    responses = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                     timeout=10)
    return sorted(s.name for r in responses for s in r.list_services_response.service)


def reflection(channel_, own):
    expected = sorted([own, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                       "grpc.reflection.v1alpha.ServerReflection"])
    for version in ("v1", "v1alpha"):
        listed = reflected_services(channel_, version)
        check(listed == expected, f"reflection {version} lists {listed}, not {expected}")


def metrics(admin):
    from prometheus_client.openmetrics.parser import \
        text_string_to_metric_families as openmetrics
    from prometheus_client.parser import text_string_to_metric_families as prometheus

    request = urllib.request.Request(
        f"{admin}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        kind = response.headers.get("Content-Type", "")
        text = response.read().decode()
    check(kind.startswith("application/openmetrics-text"), f"OpenMetrics asked, {kind} served")
    families = {f.name: f for f in openmetrics(text)}
    check("aci_filings" in families and families["aci_filings"].type == "counter",
          "aci_filings_total is an OpenMetrics counter")
    with urllib.request.urlopen(f"{admin}/metrics", timeout=10) as response:
        names = {f.name for f in prometheus(response.read().decode())}
    check("aci_log_commit_seconds" in names, "the Prometheus text format parses too")
    print(f"interop: /metrics parsed as OpenMetrics ({len(families)} families) and as text")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("carrier", "peer", "admin", "ca", "cert", "key", "peer-cert", "peer-key",
                 "samples"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    carrier_pb2, carrier_grpc, manifest_pb2 = stubs()
    pb = {"carrier": carrier_pb2, "manifest": manifest_pb2}
    as_carrier = channel(args.carrier, args.ca, args.cert, args.key)
    carrier = carrier_grpc.CarrierGatewayStub(as_carrier)
    file_samples(carrier, pb, args.samples)
    read_refusal(carrier, pb, args.samples)
    health(as_carrier, "aci.v1.CarrierGateway", "aci.v1.PeerExchange")
    reflection(as_carrier, "aci.v1.CarrierGateway")
    as_peer = channel(args.peer, args.ca, args.peer_cert, args.peer_key)
    health(as_peer, "aci.v1.PeerExchange", "aci.v1.CarrierGateway")
    reflection(as_peer, "aci.v1.PeerExchange")
    print("interop: health and reflection (v1, v1alpha) list each listener's own service")
    metrics(args.admin)
    print(json.dumps({"interop": "ok"}))


if __name__ == "__main__":
    main()
