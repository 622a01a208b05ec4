// placeholder: being written
namespace l2a {}
