/*
 * Python glue shared by every codec's wrapper: module state, errors, buffers.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#ifndef ATP_CODECS_GLUE_H
#define ATP_CODECS_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "common.h"

typedef struct {
    PyObject *error;
    PyObject *glz_window_type;   /* _codecs.GlzWindow (glz_py.c) */
} ModuleState;

/* Raise _codecs.Error(codec, offset, reason) from a failure; returns NULL. */
PyObject *raise_failure(PyObject *module, const char *codec, const DecodeFailure *f);

/* Read a palette buffer (little-endian u32 entries) into `table` (PyMem); 1 if one was given,
 * 0 for None, -1 with a Python error. */
int load_palette(PyObject *obj, uint32_t **table, size_t *n);

/* Get the output buffer: the caller's (writable, C-contiguous) or a new zeroed bytearray of
 * stride * height bytes. 0, or -1 with a Python error. */
int acquire_output(PyObject *out_arg, size_t stride, size_t height, PyObject **out_obj,
                   Py_buffer *view);

/* Each codec's methods (added to the module in module.c). */
extern PyMethodDef lz_methods[];
extern PyMethodDef bitmap_methods[];
extern PyMethodDef lz4_methods[];
extern PyMethodDef quic_methods[];
extern PyMethodDef glz_methods[];
extern PyMethodDef raster_methods[];  /* the display's compositing loops */

/* Add the GLZ window type to the module and its state (glz_py.c); 0 or -1. */
int glz_add_types(PyObject *module);

#endif
