/*
 * Python wrapper of the LZ decoder.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "glue.h"
#include "lz.h"

static PyObject *
py_lz_decode(PyObject *module, PyObject *args)
{
    Py_buffer in;
    PyObject *out_arg, *pal_arg, *out_obj = NULL, *result = NULL;
    Py_ssize_t out_stride_arg;
    Py_buffer out;
    uint32_t *pal = NULL;
    size_t pal_n = 0;
    LzHeader h;
    DecodeFailure f;
    int has_pal, rc;

    if (!PyArg_ParseTuple(args, "y*OnO:lz_decode", &in, &out_arg, &out_stride_arg, &pal_arg)) {
        return NULL;
    }
    if (out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "out_stride must be >= 0 (0: width * 4)");
        goto done_in;
    }
    if (lz_parse_header(in.buf, (size_t)in.len, &h, &f) != 0) {
        raise_failure(module, "lz", &f);
        goto done_in;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride ? out_stride : (size_t)h.width * 4;
    if ((has_pal = load_palette(pal_arg, &pal, &pal_n)) < 0) {
        goto done_in;
    }
    if (out_arg == Py_None && need_stride < (size_t)h.width * 4) {
        need_stride = (size_t)h.width * 4;  /* check_output reports the bad stride */
    }
    if (acquire_output(out_arg, need_stride, h.height, &out_obj, &out) != 0) {
        goto done_pal;
    }
    rc = check_output(h.width, h.height, &out_stride, (size_t)out.len, 12, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = lz_decode_body(in.buf, (size_t)in.len, &h, pal, pal_n, has_pal, out.buf,
                            out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "lz", &f);
    } else {
        result = Py_BuildValue("(IIIIO)", h.type, h.width, h.height, h.top_down ? 1u : 0u,
                               out_obj);
    }
    Py_DECREF(out_obj);
done_pal:
    PyMem_Free(pal);
done_in:
    PyBuffer_Release(&in);
    return result;
}

PyMethodDef lz_methods[] = {
    {"lz_decode", py_lz_decode, METH_VARARGS,
     "lz_decode(data, out, out_stride, palette) -> (type, width, height, top_down, out)"},
    {NULL, NULL, 0, NULL},
};
