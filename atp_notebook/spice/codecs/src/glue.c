/*
 * Python glue shared by every codec's wrapper (see glue.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "glue.h"

#include <string.h>

PyObject *
raise_failure(PyObject *module, const char *codec, const DecodeFailure *f)
{
    ModuleState *st = PyModule_GetState(module);
    PyObject *args = Py_BuildValue("(sns)", codec, (Py_ssize_t)f->offset, f->reason);
    if (args != NULL) {
        PyErr_SetObject(st->error, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* Read a palette buffer (little-endian u32 entries) into `table`; 0 or -1 with a Python error. */
int
load_palette(PyObject *obj, uint32_t **table, size_t *n)
{
    Py_buffer view;
    *table = NULL;
    *n = 0;
    if (obj == Py_None) {
        return 0;
    }
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) != 0) {
        return -1;
    }
    if (view.len % 4 != 0 || view.len / 4 > 65536) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "a palette is up to 65536 little-endian u32 entries (len % 4 == 0)");
        return -1;
    }
    size_t count = (size_t)view.len / 4, i;
    uint32_t *t = PyMem_Malloc(count ? count * 4 : 4);
    if (t == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < count; i++) {
        /* B, G, R from the entry; the output's X byte is 0 for palette pixels */
        t[i] = get_u32le((const uint8_t *)view.buf + 4 * i) & 0x00ffffffu;
    }
    PyBuffer_Release(&view);
    *table = t;
    *n = count;
    return 1;
}

/* Get the output buffer: the caller's (writable, C-contiguous) or a new bytearray. */
int
acquire_output(PyObject *out_arg, size_t stride, size_t height, PyObject **out_obj,
               Py_buffer *view)
{
    if (out_arg == Py_None) {
        size_t need = stride * height;
        if (height != 0 && stride > (size_t)PY_SSIZE_T_MAX / height) {
            PyErr_NoMemory();
            return -1;
        }
        *out_obj = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)need);
        if (*out_obj == NULL) {
            return -1;
        }
        memset(PyByteArray_AS_STRING(*out_obj), 0, need);
    } else {
        Py_INCREF(out_arg);
        *out_obj = out_arg;
    }
    if (PyObject_GetBuffer(*out_obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
        Py_CLEAR(*out_obj);
        return -1;
    }
    return 0;
}
