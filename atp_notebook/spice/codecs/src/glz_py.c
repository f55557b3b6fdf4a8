/*
 * Python wrapper of the GLZ decoder: the GlzWindow type and glz_decode.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4 and 1.5); no code is taken from spice-gtk.
 *
 * The type is a heap type kept in module state (no globals). Its mutex is only ever taken
 * for short bookkeeping; decodes wait for images with the GIL released.
 */
#include "glue.h"
#include "glz.h"

#include <math.h>

typedef struct {
    PyObject_HEAD
    GlzWindow *w;
    double wait_timeout;
} GlzWindowObject;

static PyObject *
window_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_pixels", "wait_timeout", NULL};
    Py_ssize_t max_pixels;
    double wait_timeout = 5.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|$d:GlzWindow", kwlist, &max_pixels,
                                     &wait_timeout)) {
        return NULL;
    }
    if (max_pixels < 1 || (uint64_t)max_pixels > GLZ_MAX_WINDOW) {
        PyErr_Format(PyExc_ValueError, "max_pixels must be 1..%llu, not %zd",
                     (unsigned long long)GLZ_MAX_WINDOW, max_pixels);
        return NULL;
    }
    if (!isfinite(wait_timeout) || wait_timeout < 0) {
        PyErr_SetString(PyExc_ValueError, "wait_timeout must be a finite number >= 0");
        return NULL;
    }
    GlzWindowObject *self = (GlzWindowObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->w = glz_window_new((uint64_t)max_pixels);
    if (self->w == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->wait_timeout = wait_timeout;
    return (PyObject *)self;
}

static void
window_dealloc(GlzWindowObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    /* no decode can be running: each holds a reference to this object */
    glz_window_free(self->w);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
window_close(GlzWindowObject *self, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
    glz_window_close(self->w);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
window_clear(GlzWindowObject *self, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
    glz_window_clear(self->w);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
window_ids(GlzWindowObject *self, PyObject *unused)
{
    size_t cap = 64, n;
    uint64_t *ids = NULL;
    for (;;) {
        uint64_t *grown = PyMem_Realloc(ids, cap * sizeof *ids);
        if (grown == NULL) {
            PyMem_Free(ids);
            return PyErr_NoMemory();
        }
        ids = grown;
        n = glz_window_ids(self->w, ids, cap);
        if (n <= cap) {
            break;
        }
        cap = n + 64;   /* images arrived meanwhile: try again with room */
    }
    PyObject *tuple = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; tuple != NULL && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(ids[i]);
        if (v == NULL) {
            Py_CLEAR(tuple);
            break;
        }
        PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, v);
    }
    PyMem_Free(ids);
    return tuple;
}

static PyObject *
window_stats(GlzWindowObject *self, void *which)
{
    GlzWindowStats s;
    glz_window_stats(self->w, &s);
    switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromSize_t(s.images);
    case 1: return PyLong_FromUnsignedLongLong(s.pixels);
    case 2: return PyLong_FromUnsignedLong(s.waiting);
    default: return PyBool_FromLong(s.closed);
    }
}

static PyObject *
window_max_pixels(GlzWindowObject *self, void *unused)
{
    return PyLong_FromUnsignedLongLong(glz_window_max_pixels(self->w));
}

static PyObject *
window_wait_timeout(GlzWindowObject *self, void *unused)
{
    return PyFloat_FromDouble(self->wait_timeout);
}

static PyMethodDef window_methods[] = {
    {"close", (PyCFunction)window_close, METH_NOARGS,
     "Drop every image; decodes waiting or started later fail with 'window closed'."},
    {"clear", (PyCFunction)window_clear, METH_NOARGS,
     "Drop every image and start again from image 0 (a display reset); waiters fail."},
    {"ids", (PyCFunction)window_ids, METH_NOARGS,
     "ids() -> tuple of the ids of the decoded images held, ascending."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef window_getset[] = {
    {"images", (getter)window_stats, NULL, "decoded images held", (void *)0},
    {"pixels", (getter)window_stats, NULL, "pixels of the images held", (void *)1},
    {"waiting", (getter)window_stats, NULL, "decodes waiting for an image", (void *)2},
    {"closed", (getter)window_stats, NULL, "close() was called", (void *)3},
    {"max_pixels", (getter)window_max_pixels, NULL, "the window size in pixels", NULL},
    {"wait_timeout", (getter)window_wait_timeout, NULL, "default wait, seconds", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot window_slots[] = {
    {Py_tp_new, window_new},
    {Py_tp_dealloc, window_dealloc},
    {Py_tp_methods, window_methods},
    {Py_tp_getset, window_getset},
    {Py_tp_doc, "GlzWindow(max_pixels, *, wait_timeout=5.0): the GLZ images of one session."},
    {0, NULL},
};

static PyType_Spec window_spec = {
    .name = "atp_notebook.spice.codecs._codecs.GlzWindow",
    .basicsize = sizeof(GlzWindowObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = window_slots,
};

int
glz_add_types(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    st->glz_window_type = PyType_FromModuleAndSpec(module, &window_spec, NULL);
    if (st->glz_window_type == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "GlzWindow", st->glz_window_type);
}

static PyObject *
py_glz_decode(PyObject *module, PyObject *args)
{
    ModuleState *st = PyModule_GetState(module);
    Py_buffer in, out = {0};
    PyObject *win_arg, *out_arg, *pal_arg, *out_obj = NULL, *result = NULL;
    Py_ssize_t out_stride_arg;
    double timeout;
    uint32_t *pal = NULL;
    size_t pal_n = 0;
    GlzHeader h;
    GlzImage *img = NULL;
    DecodeFailure f;
    int has_pal, rc;

    if (!PyArg_ParseTuple(args, "y*OOndO:glz_decode", &in, &win_arg, &out_arg,
                          &out_stride_arg, &timeout, &pal_arg)) {
        return NULL;
    }
    if (!PyObject_TypeCheck(win_arg, (PyTypeObject *)st->glz_window_type)) {
        PyErr_Format(PyExc_TypeError, "window must be a GlzWindow, not %.100s",
                     Py_TYPE(win_arg)->tp_name);
        goto done_in;
    }
    GlzWindowObject *win = (GlzWindowObject *)win_arg;
    if (out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "out_stride must be >= 0 (0: width * 4)");
        goto done_in;
    }
    if (isnan(timeout) || timeout < 0) {
        timeout = win->wait_timeout;   /* the window's default */
    }
    if ((has_pal = load_palette(pal_arg, &pal, &pal_n)) < 0) {
        goto done_in;
    }
    rc = glz_parse_header(in.buf, (size_t)in.len, &h, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = glz_decode_image(win->w, in.buf, (size_t)in.len, &h, timeout, &img, &f);
        Py_END_ALLOW_THREADS
    }
    if (rc != 0) {
        raise_failure(module, "glz", &f);
        goto done_pal;
    }
    size_t out_stride = (size_t)out_stride_arg;
    size_t need_stride = out_stride > (size_t)h.width * 4 ? out_stride : (size_t)h.width * 4;
    if (acquire_output(out_arg, need_stride, h.height, &out_obj, &out) != 0) {
        /* keep the image all the same: later images may reference it */
        Py_BEGIN_ALLOW_THREADS
        glz_finish_image(win->w, img, NULL, 0, 0, NULL, 0, 0, &f);
        Py_END_ALLOW_THREADS
        goto done_pal;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = glz_finish_image(win->w, img, pal, pal_n, has_pal, out.buf, (size_t)out.len,
                          out_stride, &f);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "glz", &f);
    } else {
        result = Py_BuildValue("(IIIiKO)", h.type, h.width, h.height, h.top_down,
                               (unsigned long long)h.id, out_obj);
    }
    Py_DECREF(out_obj);
done_pal:
    PyMem_Free(pal);
done_in:
    PyBuffer_Release(&in);
    return result;
}

PyMethodDef glz_methods[] = {
    {"glz_decode", py_glz_decode, METH_VARARGS,
     "glz_decode(data, window, out, out_stride, timeout, palette)"
     " -> (type, width, height, top_down, image_id, out)"},
    {NULL, NULL, 0, NULL},
};
