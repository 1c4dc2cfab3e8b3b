"""A protoc plugin that buf runs (buf.gen.yaml) to write the Python stubs: messages, .pyi and gRPC.

buf compiles protos/ and hands this plugin the descriptors on stdin; grpcio-tools' own protoc, the
one the Python stubs have always come from, turns them into code from that descriptor set, so buf
is the one generator for every language and the Python output stays what grpcio-tools writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

PACKAGE_INIT = '"""Generated from protos/voicemesh/v1 by buf generate (buf.gen.yaml)."""\n'


def _without_json_names(message: descriptor_pb2.DescriptorProto) -> None:
    """buf fills in every field's json_name; protoc, compiling .proto files, keeps only those a file
    sets, and ours set none. Left in, they would be embedded in the Python descriptors, and
    reflection clients (grpcurl) would print camelCase names where they print the proto's own."""
    for field in message.field:
        field.ClearField("json_name")
    for nested in message.nested_type:
        _without_json_names(nested)


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    files = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
    for file in files.file:
        for message in file.message_type:
            _without_json_names(message)
    with tempfile.TemporaryDirectory() as work:
        descriptors, out = Path(work) / "protos.pb", Path(work) / "out"
        out.mkdir()
        descriptors.write_bytes(files.SerializeToString())
        status = protoc.main(
            [
                "protoc",
                f"--descriptor_set_in={descriptors}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *request.file_to_generate,
            ]
        )
        if status:
            response.error = f"grpc_tools.protoc failed with status {status}"
            return response
        packages = set()
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            name = path.relative_to(out).as_posix()
            packages.add(str(Path(name).parent))
            response.file.add(name=name, content=path.read_text())
        for package in sorted(packages):
            response.file.add(name=f"{package}/__init__.py", content=PACKAGE_INIT)
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
