pub mod fake_os;
