# A container is imported by its id: its name and the suffix made at create
# (the coexist_container's id attribute, or `coexist status`). Its name is
# the one it was declared with; one declared through the API without a name
# is named by its id.
terraform import coexist_container.greeter_1 greeter-v1-x7k2p
