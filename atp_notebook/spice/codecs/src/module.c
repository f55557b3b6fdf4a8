/*
 * The _codecs module: Spice image decoders in C, one source file per codec beside this one.
 *
 * Written for atp-notebook from the format descriptions in the project's research notes
 * (shared/research/display.md sections 1.3 to 1.5); no code is taken from spice-common.
 *
 * Output is always 32-bit pixels in memory byte order B, G, R, X (what a Spice 32_xRGB
 * surface holds), rows top-down, into a caller-supplied writable C-contiguous buffer or a
 * new bytearray. Every read of the input and every write of the output is checked against
 * its bounds; a bad input ends in _codecs.Error(codec, offset, reason), which the Python
 * surface turns into atp_notebook.errors.CodecError. Decoding runs without the GIL.
 * The module keeps no mutable global state: its exception type lives in module state.
 */
#include "glue.h"

/* Every codec's method table; a new codec adds its table here. */
static PyMethodDef *const method_tables[] = {
    lz_methods, bitmap_methods, lz4_methods, quic_methods, glz_methods, raster_methods,
    NULL,
};

static int
codecs_exec(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    st->error = PyErr_NewExceptionWithDoc(
        "atp_notebook.spice.codecs._codecs.Error",
        "Bad compressed data: args are (codec, offset, reason).", PyExc_ValueError, NULL);
    if (st->error == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Error", st->error) != 0) {
        return -1;
    }
    for (size_t i = 0; method_tables[i] != NULL; i++) {
        if (PyModule_AddFunctions(module, method_tables[i]) != 0) {
            return -1;
        }
    }
    if (glz_add_types(module) != 0) {
        return -1;
    }
    return 0;
}

static int
codecs_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *st = PyModule_GetState(module);
    Py_VISIT(st->error);
    Py_VISIT(st->glz_window_type);
    return 0;
}

static int
codecs_clear(PyObject *module)
{
    ModuleState *st = PyModule_GetState(module);
    Py_CLEAR(st->error);
    Py_CLEAR(st->glz_window_type);
    return 0;
}

static void
codecs_free(void *module)
{
    codecs_clear((PyObject *)module);
}

static PyModuleDef_Slot codecs_slots[] = {
    {Py_mod_exec, codecs_exec},
    {0, NULL},
};

static struct PyModuleDef codecs_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_codecs",
    .m_doc = "Spice image decoders into B,G,R,X pixels; see atp_notebook/spice/codecs.",
    .m_size = sizeof(ModuleState),
    .m_slots = codecs_slots,
    .m_traverse = codecs_traverse,
    .m_clear = codecs_clear,
    .m_free = codecs_free,
};

PyMODINIT_FUNC
PyInit__codecs(void)
{
    return PyModuleDef_Init(&codecs_module);
}
