/*
 * Python wrapper of the BITMAP converter.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "bitmap.h"
#include "glue.h"

static PyObject *
py_bitmap_decode(PyObject *module, PyObject *args)
{
    Py_buffer in, out;
    int fmt, top_down;
    Py_ssize_t width, height, stride, out_stride_arg;
    PyObject *pal_arg, *out_arg, *out_obj = NULL, *result = NULL;
    uint32_t *pal = NULL;
    size_t pal_n = 0;
    DecodeFailure f;
    int has_pal, rc;

    if (!PyArg_ParseTuple(args, "iy*nnnpOOn:bitmap_decode", &fmt, &in, &width, &height,
                          &stride, &top_down, &pal_arg, &out_arg, &out_stride_arg)) {
        return NULL;
    }
    if (width < 0 || height < 0 || stride < 0 || out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "sizes must be >= 0");
        goto done_in;
    }
    BitmapSpec b = {fmt, (size_t)width, (size_t)height, (size_t)stride, top_down};
    if ((has_pal = load_palette(pal_arg, &pal, &pal_n)) < 0) {
        goto done_in;
    }
    if (bitmap_check(&b, (size_t)in.len, has_pal, &f) != 0) {
        raise_failure(module, "bitmap", &f);
        goto done_pal;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride > b.width * 4 ? out_stride : b.width * 4;
    if (acquire_output(out_arg, need_stride, b.height, &out_obj, &out) != 0) {
        goto done_pal;
    }
    rc = check_output(b.width, b.height, &out_stride, (size_t)out.len, 0, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = bitmap_body(in.buf, &b, pal, pal_n, out.buf, out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "bitmap", &f);
    } else {
        result = Py_NewRef(out_obj);
    }
    Py_DECREF(out_obj);
done_pal:
    PyMem_Free(pal);
done_in:
    PyBuffer_Release(&in);
    return result;
}

PyMethodDef bitmap_methods[] = {
    {"bitmap_decode", py_bitmap_decode, METH_VARARGS,
     "bitmap_decode(fmt, data, width, height, stride, top_down, palette, out, out_stride)"
     " -> out"},
    {NULL, NULL, 0, NULL},
};
