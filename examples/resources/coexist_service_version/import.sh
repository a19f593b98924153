# A service version is imported by service@version.
terraform import coexist_service_version.greeter_1 greeter@1.4.2
