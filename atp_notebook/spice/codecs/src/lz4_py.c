/*
 * Python wrapper of the LZ4 image decoder.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4 and 8); no code is taken from spice-common.
 */
#include "glue.h"
#include "lz4_image.h"

static PyObject *
py_lz4_decode(PyObject *module, PyObject *args)
{
    Py_buffer in, out;
    Py_ssize_t width, height, out_stride_arg;
    PyObject *out_arg, *out_obj = NULL, *result = NULL;
    Lz4Spec s;
    DecodeFailure f;
    int rc;

    if (!PyArg_ParseTuple(args, "y*nnOn:lz4_decode", &in, &width, &height, &out_arg,
                          &out_stride_arg)) {
        return NULL;
    }
    if (width < 0 || height < 0 || out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "width, height and out_stride must be >= 0");
        goto done_in;
    }
    if (lz4_parse(in.buf, (size_t)in.len, (size_t)width, (size_t)height, &s, &f) != 0) {
        raise_failure(module, "lz4", &f);
        goto done_in;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride > s.width * 4 ? out_stride : s.width * 4;
    if (acquire_output(out_arg, need_stride, s.height, &out_obj, &out) != 0) {
        goto done_in;
    }
    rc = check_output(s.width, s.height, &out_stride, (size_t)out.len, 0, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = lz4_decode_body(in.buf, (size_t)in.len, &s, out.buf, out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "lz4", &f);
    } else {
        result = Py_BuildValue("(iiO)", s.fmt, s.top_down, out_obj);
    }
    Py_DECREF(out_obj);
done_in:
    PyBuffer_Release(&in);
    return result;
}

PyMethodDef lz4_methods[] = {
    {"lz4_decode", py_lz4_decode, METH_VARARGS,
     "lz4_decode(data, width, height, out, out_stride) -> (format, top_down, out)"},
    {NULL, NULL, 0, NULL},
};
