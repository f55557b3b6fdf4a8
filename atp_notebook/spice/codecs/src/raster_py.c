/*
 * Python wrapper of the compositing loops (raster.c). Every buffer's length is checked
 * against the pixel count before the loop runs; the loops run without the GIL.
 *
 * Written for atp-notebook; no code is taken from spice-common or pixman.
 */
#include "glue.h"
#include "raster.h"

/* 0 if buffer `b` holds `count` units of `unit` bytes, else -1 with a ValueError. */
static int
check_len(const Py_buffer *b, size_t count, size_t unit, const char *name)
{
    if ((size_t)b->len / unit < count) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, fewer than %zu pixels need", name,
                     b->len, count);
        return -1;
    }
    return 0;
}

static PyObject *
py_raster_over(PyObject *module, PyObject *args)
{
    Py_buffer src, dst, out, mask = {0};
    PyObject *mask_arg, *result = NULL;
    Py_ssize_t count;
    unsigned alpha, flags;

    if (!PyArg_ParseTuple(args, "y*y*Ow*nII:raster_over", &src, &dst, &mask_arg, &out, &count,
                          &alpha, &flags)) {
        return NULL;
    }
    int has_mask = mask_arg != Py_None;
    if (has_mask && PyObject_GetBuffer(mask_arg, &mask, PyBUF_SIMPLE) != 0) {
        goto done;
    }
    if (count < 0 || alpha > 255 || flags > 7) {
        PyErr_SetString(PyExc_ValueError, "count >= 0, alpha 0..255, flags 0..7");
        goto done_mask;
    }
    size_t n = (size_t)count;
    if (n > MAX_PIXELS || check_len(&src, n, 4, "src") || check_len(&dst, n, 4, "dst") ||
        check_len(&out, n, 4, "out") || (has_mask && check_len(&mask, n, 1, "mask"))) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "count past MAX_PIXELS");
        }
        goto done_mask;
    }
    Py_BEGIN_ALLOW_THREADS
    raster_over(src.buf, dst.buf, has_mask ? mask.buf : NULL, out.buf, n, alpha, flags);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done_mask:
    if (has_mask) {
        PyBuffer_Release(&mask);
    }
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *
py_raster_rop3(PyObject *module, PyObject *args)
{
    Py_buffer p, s, d, out;
    PyObject *result = NULL;
    Py_ssize_t count;
    unsigned code;

    if (!PyArg_ParseTuple(args, "Iy*y*y*w*n:raster_rop3", &code, &p, &s, &d, &out, &count)) {
        return NULL;
    }
    if (count < 0 || (size_t)count > MAX_PIXELS || code > 255) {
        PyErr_SetString(PyExc_ValueError, "count 0..MAX_PIXELS, code 0..255");
        goto done;
    }
    size_t n = (size_t)count;
    /* a 4-byte pattern or source is one word repeated (a solid brush) */
    size_t p_step = p.len == 4 ? 0 : 4, s_step = s.len == 4 ? 0 : 4;
    if ((p_step && check_len(&p, n, 4, "p")) || (s_step && check_len(&s, n, 4, "s")) ||
        check_len(&d, n, 4, "d") || check_len(&out, n, 4, "out")) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    raster_rop3(code, p.buf, p_step, s.buf, s_step, d.buf, out.buf, n);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&p);
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    PyBuffer_Release(&out);
    return result;
}

PyMethodDef raster_methods[] = {
    {"raster_over", py_raster_over, METH_VARARGS,
     "raster_over(src, dst, mask, out, count, alpha, flags): OVER of count B,G,R,A pixels"},
    {"raster_rop3", py_raster_rop3, METH_VARARGS,
     "raster_rop3(code, p, s, d, out, count): the rop3 of count 32-bit words"},
    {NULL, NULL, 0, NULL},
};
