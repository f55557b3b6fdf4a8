/*
 * Python wrapper of the QUIC decoder.
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md); no code is taken from spice-common.
 */
#include "glue.h"
#include "quic.h"

#define TABLES_ATTR "_quic_tables"
#define TABLES_NAME "atp_notebook.spice.codecs._codecs._quic_tables"

static void
free_tables(PyObject *capsule)
{
    PyMem_RawFree(PyCapsule_GetPointer(capsule, TABLES_NAME));
}

/*
 * The code tables (about 22 KB, 4 us to build) are the same for every stream: built on the
 * first call and kept on the module. Returns a new reference to their capsule (the caller
 * holds it while it decodes without the GIL), or NULL with a Python error.
 */
static PyObject *
tables_capsule(PyObject *module)
{
    PyObject *cap = PyObject_GetAttrString(module, TABLES_ATTR);
    if (cap != NULL && PyCapsule_IsValid(cap, TABLES_NAME)) {
        return cap;
    }
    Py_XDECREF(cap);
    PyErr_Clear();
    QuicTables *t = PyMem_RawMalloc(sizeof *t);
    if (t == NULL) {
        return PyErr_NoMemory();
    }
    quic_tables_init(t);
    cap = PyCapsule_New(t, TABLES_NAME, free_tables);
    if (cap == NULL) {
        PyMem_RawFree(t);
        return NULL;
    }
    if (PyObject_SetAttrString(module, TABLES_ATTR, cap) != 0) {
        Py_DECREF(cap);
        return NULL;
    }
    return cap;
}

static PyObject *
py_quic_decode(PyObject *module, PyObject *args)
{
    Py_buffer in, out;
    PyObject *out_arg, *out_obj = NULL, *result = NULL, *tables;
    Py_ssize_t out_stride_arg;
    QuicHeader h;
    DecodeFailure f;
    int rc;

    if (!PyArg_ParseTuple(args, "y*On:quic_decode", &in, &out_arg, &out_stride_arg)) {
        return NULL;
    }
    if (out_stride_arg < 0) {
        PyErr_SetString(PyExc_ValueError, "out_stride must be >= 0 (0: width * 4)");
        goto done_in;
    }
    if (quic_parse_header(in.buf, (size_t)in.len, &h, &f) != 0) {
        raise_failure(module, "quic", &f);
        goto done_in;
    }
    if ((tables = tables_capsule(module)) == NULL) {
        goto done_in;
    }
    const QuicTables *t = PyCapsule_GetPointer(tables, TABLES_NAME);
    size_t out_stride = (size_t)out_stride_arg;
    size_t row = (size_t)h.width * 4;
    /* a new buffer is at least wide enough; check_output reports a narrow stride */
    if (acquire_output(out_arg, out_stride > row ? out_stride : row, h.height, &out_obj,
                       &out) != 0) {
        goto done_tables;
    }
    rc = check_output(h.width, h.height, &out_stride, (size_t)out.len, 12, &f);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = quic_decode_body(t, in.buf, (size_t)in.len, &h, out.buf, out_stride, &f);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&out);
    if (rc != 0) {
        raise_failure(module, "quic", &f);
    } else {
        result = Py_BuildValue("(IIIO)", h.type, h.width, h.height, out_obj);
    }
    Py_DECREF(out_obj);
done_tables:
    Py_DECREF(tables);
done_in:
    PyBuffer_Release(&in);
    return result;
}

PyMethodDef quic_methods[] = {
    {"quic_decode", py_quic_decode, METH_VARARGS,
     "quic_decode(data, out, out_stride) -> (type, width, height, out)"},
    {NULL, NULL, 0, NULL},
};
